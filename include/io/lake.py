"""The lake's layout, in one place, and its Parquet reads and writes.

    raw/<use case>/ds=YYYY-MM-DD/part-0.parquet          validated daily partitions (ingest)
    quarantine/<use case>/ds=YYYY-MM-DD/part-0.parquet   rows set aside, with their reasons (ingest)
    training/<use case>/ds=YYYY-MM-DD/{train,holdout}.parquet
                                                         a training run's split (training)
    models/<use case>/sha256=<digest>.skops              model files, named by their checksum
    models/<use case>/cards/v<N>.md                      a version's model card (Markdown)
    predictions/<use case>/ds=YYYY-MM-DD/part-0.parquet  a day's scores (scoring)
    staging/predictions/<use case>/ds=YYYY-MM-DD/run=<run>/shard-0003-of-0008.parquet
                                                         a scoring shard's output, until the publish

A daily partition is one object, replaced whole, so a rerun overwrites it and a crash leaves the old one.
A shard's staged object is keyed by the run, its index and the shard count, so a retry or a rerun of
one shard replaces only its own output; the publish removes the run's staging.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.io.lineage import report_lineage
from include.io.stores import ObjectStore
from include.partition import DS_FORMAT

PART_FILE = "part-0.parquet"
RAW_ZONE = "raw"
QUARANTINE_ZONE = "quarantine"
TRAINING_ZONE = "training"
MODELS_ZONE = "models"
PREDICTIONS_ZONE = "predictions"
STAGING_ZONE = "staging"


def day_prefix(zone: str, use_case: str, ds: dt.date) -> str:
    """The folder of one day in a zone, e.g. `raw/churn/ds=2025-03-31/`."""
    return f"{zone}/{use_case}/ds={ds.strftime(DS_FORMAT)}/"


def partition_key(zone: str, use_case: str, ds: dt.date) -> str:
    """The key of one day's partition, e.g. `raw/churn/ds=2025-03-31/part-0.parquet`."""
    return day_prefix(zone, use_case, ds) + PART_FILE


def staging_prefix(use_case: str, ds: dt.date, run_id: str) -> str:
    """The folder of one run's staged shards: `staging/predictions/churn/ds=2025-03-31/run=<run>/`.

    `<run>` is the run id where it is safe in a key (`_` elsewhere), then a digest that keeps it unique.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:80]
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{STAGING_ZONE}/{day_prefix(PREDICTIONS_ZONE, use_case, ds)}run={readable}-{digest}/"


def shard_key(use_case: str, ds: dt.date, run_id: str, index: int, count: int) -> str:
    """The key of shard `index` (from 0) of `count`: `.../shard-0003-of-0008.parquet`."""
    return f"{staging_prefix(use_case, ds, run_id)}shard-{index:04d}-of-{count:04d}.parquet"


def training_key(use_case: str, ds: dt.date, part: Literal["train", "holdout"]) -> str:
    """The key of a training run's rows, e.g. `training/churn/ds=2025-03-31/holdout.parquet`."""
    return f"{day_prefix(TRAINING_ZONE, use_case, ds)}{part}.parquet"


def model_key(use_case: str, sha256: str) -> str:
    """The key of a model file: its checksum names it, so equal files share one key."""
    return f"{MODELS_ZONE}/{use_case}/sha256={sha256}.skops"


def card_key(use_case: str, version: int) -> str:
    """The key of a version's model card, e.g. `models/churn/cards/v2.md`."""
    return f"{MODELS_ZONE}/{use_case}/cards/v{version}.md"


def write_frame(store: ObjectStore, key: str, frame: pd.DataFrame) -> None:
    """Write a frame as one Parquet object, all or nothing."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PART_FILE
        pq.write_table(table, path, compression="zstd")
        store.put_file(key, path)


def read_frame(store: ObjectStore, key: str) -> pd.DataFrame:
    """Read one Parquet object."""
    return pq.read_table(io.BytesIO(store.read_bytes(key))).to_pandas()


def partition_days(store: ObjectStore, zone: str, use_case: str) -> dict[dt.date, str]:
    """Every day with a partition in the zone, and its key."""
    days = {}
    for key in store.list_keys(f"{zone}/{use_case}/"):
        if key.endswith(PART_FILE):
            days[dt.date.fromisoformat(key.split("ds=")[1].split("/")[0])] = key
    return days


def read_days(
    store: ObjectStore,
    zone: str,
    use_case: str,
    first: dt.date,
    last: dt.date,
    only: Collection[dt.date] | None = None,
) -> tuple[pd.DataFrame, dict[dt.date, str]]:
    """The partitions of the days in [first, last] that exist (and are in `only`, when given),
    concatenated; and each day's sha256."""
    frames, digests = [], {}
    present = (d for d in partition_days(store, zone, use_case) if first <= d <= last)
    for day in sorted(d for d in present if only is None or d in only):
        key = partition_key(zone, use_case, day)
        data = store.read_bytes(key)
        report_lineage(read=[store.uri(key)])
        digests[day] = hashlib.sha256(data).hexdigest()
        frames.append(pq.read_table(io.BytesIO(data)).to_pandas())
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), digests
