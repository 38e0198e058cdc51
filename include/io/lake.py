"""The lake's layout and its Parquet reads and writes.

Every dataset is partitioned by day under `<zone>/<use case>/ds=YYYY-MM-DD/part-0.parquet`; a
partition is one object, replaced whole, so a rerun overwrites it and a crash leaves the old one.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from include.io.stores import ObjectStore
from include.partition import DS_FORMAT

PART_FILE = "part-0.parquet"
RAW_ZONE = "raw"  # the validated daily partitions ingest writes


def partition_key(zone: str, use_case: str, ds) -> str:
    """The key of one day's partition, e.g. `raw/churn/ds=2025-03-31/part-0.parquet`."""
    return f"{zone}/{use_case}/ds={ds.strftime(DS_FORMAT)}/{PART_FILE}"


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


def read_days(store: ObjectStore, zone: str, use_case: str, first, last) -> tuple[pd.DataFrame, list]:
    """The partitions of the days in [first, last] that exist, concatenated; and the days found."""
    found = []
    frames = []
    for key in store.list_keys(f"{zone}/{use_case}/"):
        if not key.endswith(PART_FILE):
            continue
        day = dt.date.fromisoformat(key.split("ds=")[1].split("/")[0])
        if first <= day <= last:
            found.append(day)
            frames.append(read_frame(store, key))
    if not frames:
        return pd.DataFrame(), []
    return pd.concat(frames, ignore_index=True), sorted(found)
