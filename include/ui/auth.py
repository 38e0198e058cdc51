"""The UI page trusts Airflow's auth: the user's JWT from the UI's `_token` cookie or a Bearer header.

Airflow mounts a plugin's FastAPI app without checking anyone, so every route of the app depends
on these. Internal Airflow modules are used (pinned with apache-airflow 3.3.2, tested in
tests/unit/ui/test_api.py): `resolve_user_from_token` turns a token into a user, and the auth
manager's `is_authorized_dag` answers whether that user may read a DAG.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Annotated

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from include.config import Settings
from include.usecases.spec import SpecError, UseCase, get_spec

log = logging.getLogger(__name__)

# Declared for the OpenAPI document; neither fails on its own (a missing token is a 401 below).
bearer = HTTPBearer(auto_error=False, description="Airflow's JWT (POST /auth/token)")
cookie = APIKeyCookie(name="_token", auto_error=False, description="the Airflow UI's session token")


async def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token_cookie: Annotated[str | None, Depends(cookie)],
) -> BaseUser:
    """The Airflow user behind the request's token (the Bearer header wins over the cookie).

    Raises:
        HTTPException: 401 when there is no token, or it is expired, forged or revoked.
    """
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    token = credentials.credentials if credentials else token_cookie
    try:
        return await resolve_user_from_token(token)
    except HTTPException as refused:
        # Airflow answers 403 for a forged token; to this app any bad token is "not authenticated".
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated") from refused


def may_read(user, spec: UseCase) -> bool:
    """Whether `user` may read every DAG of the use case (ingest, train, score)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    manager = get_auth_manager()
    try:
        return all(
            manager.is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id))
            for dag_id in (spec.ingest_dag_id, spec.train_dag_id, spec.score_dag_id)
        )
    except (KeyError, AttributeError, TypeError) as unknown:
        # A validly signed token whose role the auth manager cannot judge: a name it does not know
        # (the simple auth manager looks the role up by name: KeyError), or no name at all (a number
        # or a list: its `role.upper()` fails). No rights, not a server error.
        log.warning("%s has a role the auth manager cannot judge: %r", user.get_name(), unknown)
        return False


@cache
def spec_named(name: str) -> UseCase:
    """The use case's validated spec (read once per process)."""
    return get_spec(name, Settings.from_env().spec_dir)


def use_case_spec(use_case: str) -> UseCase:
    """The path's use case.

    Raises:
        HTTPException: 404 when no spec file names it (the message names no server path).
    """
    try:
        return spec_named(use_case)
    except SpecError as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _unknown(use_case)) from missing


def use_case_reader(use_case: str, user: Annotated[BaseUser, Depends(current_user)]) -> None:
    """Authenticate (401), then find a use case the user may read (404 otherwise).

    Declared once on each use case router. The user is resolved first, so an anonymous request
    learns nothing; a user who may not read a use case gets the answer an unknown one gets, so the
    names of use cases are not learnt by trying them.
    """
    spec = use_case_spec(use_case)
    if not may_read(user, spec):
        log.info("%s may not read the DAGs of %s", user.get_name(), use_case)
        raise HTTPException(status.HTTP_404_NOT_FOUND, _unknown(use_case))


def may_edit_training(user, spec: UseCase) -> bool:
    """Whether `user` may edit the use case's training DAG: what moving its champion needs."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    try:
        return get_auth_manager().is_authorized_dag(
            method="PUT", user=user, details=DagDetails(id=spec.train_dag_id)
        )
    except (KeyError, AttributeError, TypeError) as unknown:  # a role the auth manager cannot judge
        log.warning("%s has a role the auth manager cannot judge: %r", user.get_name(), unknown)
        return False


def champion_mover(use_case: str, user: Annotated[BaseUser, Depends(current_user)]) -> BaseUser:
    """The user, when they may move the use case's champion (after `use_case_reader`'s checks).

    Raises:
        HTTPException: 403 naming the permission a reader lacks.
    """
    spec = use_case_spec(use_case)
    if not may_edit_training(user, spec):
        log.info("%s may not move the champion of %s", user.get_name(), use_case)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"moving the champion of {use_case!r} needs edit access to the DAG {spec.train_dag_id!r}",
        )
    return user


def _unknown(use_case: str) -> str:
    return f"no use case {use_case!r} that you may read"
