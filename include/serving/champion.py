"""The one adapter between the service and the registry and model files (DESIGN.md contract 7).

Everything the service reads about models goes through `ChampionSource`: which version the
`champion` alias names, since when, and the model file loaded after its sha256 matches. Today it
calls `include.registry.registry.Registry` and `include.training.task.load_version_model`; when
`include/registry/model_files.py` (`load_version_model(lake, version) -> VersionModel`) and
`include/platform/queries.py` land, only this module changes.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.pipeline import Pipeline

from include.io.stores import ObjectStore
from include.registry.registry import ModelVersion, Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionModel:
    """A registered version and its fitted pipeline (the shape `model_files.VersionModel` will have).

    Attributes:
        version: the registry's entry (number, sha256, metrics, ...).
        pipeline: preprocessor and estimator; `predict_proba` takes the raw feature frame.
        threshold: the registry's decision threshold (a row is positive when its score reaches it).
    """

    version: ModelVersion
    pipeline: Pipeline

    @property
    def threshold(self) -> float:
        return float(self.version.threshold)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The positive-class probability of each row of `frame`."""
        return self.pipeline.predict_proba(frame)[:, 1]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """1 where the probability reaches the threshold, else 0."""
        return (self.predict_proba(frame) >= self.threshold).astype(int)


class ChampionSource:
    """The registry's `champion` alias and the model files, as the service reads them."""

    def __init__(self, platform: sa.Engine, lake: ObjectStore) -> None:
        self.registry = Registry(platform)
        self.lake = lake

    @classmethod
    def from_settings(cls) -> ChampionSource:
        """The source on the platform's connections (`PLATFORM_DB_CONN_ID`, `PLATFORM_LAKE_CONN_ID`)."""
        from include.config import Settings
        from include.io.connections import engine_for, store_for

        settings = Settings.from_env()
        return cls(engine_for(settings.platform_db_conn_id), store_for(settings.lake_conn_id))

    def champion(self, use_case: str) -> tuple[ModelVersion, dt.datetime | None] | None:
        """The version the `champion` alias names now and when the alias moved to it; None if none."""
        from include.platform.tables import model_aliases
        from include.registry.registry import CHAMPION

        version = self.registry.champion(use_case)
        if version is None:
            return None
        # TODO(contract 7): a read query of include/platform/queries.py once it lands.
        with self.registry.engine.connect() as conn:
            moved_at = conn.execute(
                sa.select(model_aliases.c.moved_at).where(
                    (model_aliases.c.use_case == use_case)
                    & (model_aliases.c.alias == CHAMPION)
                    & (model_aliases.c.version == version.version)
                )
            ).scalar()
        if moved_at is not None and moved_at.tzinfo is None:
            moved_at = moved_at.replace(tzinfo=dt.UTC)  # SQLite keeps no zone; the platform writes UTC
        return version, moved_at

    def load(self, version: ModelVersion) -> VersionModel:
        """The version's model, loaded only after the file's sha256 matches the registry's.

        Raises:
            ValueError: on a checksum mismatch or a file that is not a trusted model file.
        """
        from include.training.task import load_version_model

        fitted = load_version_model(self.lake, version)
        return VersionModel(version=version, pipeline=fitted.pipeline)
