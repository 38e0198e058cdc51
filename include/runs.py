"""What a stage knows of the run it works for, and where it reads and writes. No Airflow in here.

A DAG task turns Airflow's context into a `RunFacts` once (`include.dag_context`); tests, the tools
and the bench build the same object with `RunFacts.of`. Stage functions take `(run, ..., stores)`
and return typed results (`XComResult`) that go to XCom as plain dicts and come back as themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict

from include.config import Settings
from include.partition import Partition, check_params, resolve_partition
from include.usecases.spec import UseCase, load_spec, spec_file

if TYPE_CHECKING:
    import sqlalchemy as sa

    from include.io.stores import ObjectStore
    from include.registry.registry import Registry


class SpecChanged(RuntimeError):
    """The spec file changed between two tasks of one run."""


class XComResult(BaseModel):
    """A task's typed result: `to_dict()` is what XCom holds, `from_dict()` gives it back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls.model_validate(dict(data))


@dataclass(frozen=True)
class RunFacts:
    """One run of a use case's DAG, as its stages see it.

    Attributes:
        spec: the use case, with the run's form overrides applied (`UseCase.with_run_params`).
        partition: the day the run processes (`include.partition`).
        run_id: the DAG run's id, which keys staging and run records.
        params: the run's params, checked (no non-finite number anywhere).
        spec_path: the spec file the run reads.
        spec_sha256: the file's content hash when this task read it.
    """

    spec: UseCase
    partition: Partition
    run_id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    spec_path: Path | None = None
    spec_sha256: str = ""

    @property
    def use_case(self) -> str:
        return self.spec.name

    @property
    def ds(self) -> dt.date:
        return self.partition.ds

    @classmethod
    def build(
        cls,
        use_case: str,
        run_id: str,
        params: Mapping[str, Any],
        day: Any,
        spec_dir: Path | None = None,
    ) -> RunFacts:
        """The run's facts: the spec read once (and hashed), the params checked, the overrides applied.

        Args:
            use_case: the spec's `name`.
            run_id: the run's id.
            params: the run's params (the trigger form's, a conf's).
            day: a function of the use case's time zone that returns the run's `Partition`.
            spec_dir: the spec folder (default: `Settings.from_env().spec_dir`).
        """
        check_params(params)  # before the overrides: a NaN there fails naming the param
        path = spec_file(use_case, spec_dir or Settings.from_env().spec_dir)
        text = path.read_bytes()
        spec = load_spec(path, text).with_run_params(params)
        return cls(
            spec=spec,
            partition=day(spec.schedule.timezone),
            run_id=run_id,
            params=dict(params),
            spec_path=path,
            spec_sha256=hashlib.sha256(text).hexdigest(),
        )

    @classmethod
    def of(
        cls, use_case: str, ds: str | dt.date, run_id: str, spec_dir: Path | None = None, **params: Any
    ) -> RunFacts:
        """A run of `use_case` for the day `ds` outside Airflow (tests, the tools, the bench), its spec
        read from `spec_dir` (default: the settings')."""
        params = {"ds": str(ds), **params}
        return cls.build(
            use_case, run_id, params, lambda tz: resolve_partition(params["ds"], None, None, tz), spec_dir
        )

    def check_spec(self, recorded: str) -> None:
        """Refuse to go on when the spec file is not the one an earlier task of the run read.

        Raises:
            SpecChanged: naming the file and both hashes.
        """
        if recorded and recorded != self.spec_sha256:
            raise SpecChanged(
                f"{self.spec_path}: the spec changed during run {self.run_id} (sha256 {recorded[:12]} "
                f"when the run began, {self.spec_sha256[:12]} now); rerun the whole run to use the new spec"
            )


@dataclass(frozen=True)
class Stores:
    """Where the stages read and write: the lake and the platform's database (and its registry)."""

    lake: ObjectStore
    platform: sa.Engine

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Stores:
        """The stores behind the settings' connection ids (`PLATFORM_LAKE_CONN_ID`, `PLATFORM_DB_CONN_ID`)."""
        from include.io.connections import store_for
        from include.platform.schema import platform_engine

        settings = settings or Settings.from_env()
        return cls(store_for(settings.lake_conn_id), platform_engine(settings.platform_db_conn_id))

    @cached_property
    def registry(self) -> Registry:
        from include.registry.registry import Registry

        return Registry(self.platform)
