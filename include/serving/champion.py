"""The one adapter between the service and the registry and model files (DESIGN.md contract 7).

Everything the service reads about models goes through `ChampionSource`: which version the
`champion` alias names and when it moved there (`include.registry.registry.Registry`), the
version's detail as every reader shows it (`include.registry.read_models`), and the model file,
loaded after its sha256 matches (`include.registry.model_files.load_version_model`).
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from include.io.stores import ObjectStore
from include.registry.model_files import VersionModel, load_version_model
from include.registry.read_models import VersionDetail, describe
from include.registry.registry import ModelVersion, Registry
from include.usecases.spec import UseCase

__all__ = ["ChampionSource", "ModelVersion", "VersionDetail", "VersionModel"]

log = logging.getLogger(__name__)


class ChampionSource:
    """The registry's `champion` alias and the model files, as the service reads them."""

    def __init__(self, platform: sa.Engine, lake: ObjectStore) -> None:
        self.registry = Registry(platform)
        self.lake = lake

    @classmethod
    def from_settings(cls) -> ChampionSource:
        """The source on the platform's connections (`PLATFORM_DB_CONN_ID`, `PLATFORM_LAKE_CONN_ID`).

        Raises:
            SchemaBehindError: when the platform database is not at the code's schema revision.
        """
        from include.config import Settings
        from include.io.connections import store_for
        from include.platform.schema import platform_engine

        settings = Settings.from_env()
        return cls(platform_engine(settings.platform_db_conn_id), store_for(settings.lake_conn_id))

    def champion(self, use_case: str) -> tuple[ModelVersion, dt.datetime | None] | None:
        """The version the `champion` alias names now and when the alias moved to it; None if none."""
        version = self.registry.champion(use_case)
        if version is None:
            return None
        moves = [c for c in self.registry.champion_history(use_case) if c.version == version.version]
        promoted_at = moves[-1].promoted_at if moves else None
        if promoted_at is not None and promoted_at.tzinfo is None:
            promoted_at = promoted_at.replace(tzinfo=dt.UTC)  # SQLite keeps no zone; the platform writes UTC
        return version, promoted_at

    def detail(self, spec: UseCase, version: ModelVersion) -> VersionDetail:
        """`version`'s detail with its gate decision, as the CLI and the UI show it."""
        return describe(version, self.registry.decision(spec.name, version.version), spec.train_dag_id)

    def load(self, version: ModelVersion) -> VersionModel:
        """The version's model, loaded only after the file's sha256 matches the registry's.

        Raises:
            ModelFileError: on a checksum mismatch or a file that is not a trusted model file.
        """
        return load_version_model(self.lake, version)
