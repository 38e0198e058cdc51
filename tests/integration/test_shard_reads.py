"""A scoring shard on S3 reads its own row groups by byte range, never the whole partition."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.io.stores import S3Store
from include.scoring.score import ScoreError, Shard, partition_row_groups, read_shard

pytestmark = pytest.mark.integration

KEY = "raw/churn/ds=2025-03-31/part-0.parquet"


class CountingClient:
    """An S3 client that counts the bytes its GETs return."""

    def __init__(self, client) -> None:
        self.client, self.bytes = client, 0

    def get_object(self, **kwargs):
        answer = self.client.get_object(**kwargs)
        body = answer["Body"].read()
        self.bytes += len(body)
        return {**answer, "Body": type("Body", (), {"read": lambda _: body})()}

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_a_shard_on_s3_reads_its_row_groups_and_little_else(s3_client, make_bucket, tmp_path):
    rng = np.random.default_rng(3)
    rows = 800_000
    table = pa.table({"id": [f"{i:06d}" for i in range(rows)], "x": rng.random(rows), "y": rng.random(rows)})
    path = tmp_path / "part-0.parquet"
    pq.write_table(table, path, row_group_size=100_000, compression="none")
    counting = CountingClient(s3_client)
    lake = S3Store(counting, make_bucket("lake"))
    lake.put_file(KEY, path)
    size = path.stat().st_size

    # Sorted by id: each row group's first id, where a shard's range of ids starts.
    assert partition_row_groups(lake, KEY, ["id", "x"]) == (
        [100_000] * 8,
        [f"{i:06d}" for i in range(0, rows, 100_000)],
    )
    assert counting.bytes < size / 8  # the footer alone

    counting.bytes = 0
    shard = Shard(index=2, count=4, first_group=4, end_group=6, rows=200_000, partition_rows=rows, key="k")
    with read_shard(lake, KEY, shard, ["id", "x"], 30_000) as batches:
        read = pa.Table.from_batches(list(batches))
    assert read["id"].to_pylist() == [f"{i:06d}" for i in range(400_000, 600_000)]
    # 2 of 8 row groups, 2 of 3 columns (1/6 of the file), the footer and 1 MB reads: 6.4 of 25.7 MB here.
    assert counting.bytes < size / 3

    with pytest.raises(ScoreError, match=r"missing column\(s\) \['tenure'\]"):
        partition_row_groups(lake, KEY, ["id", "tenure"])
    moved = Shard(
        index=2, count=4, first_group=4, end_group=6, rows=200_000, partition_rows=rows + 1, key="k"
    )
    with pytest.raises(ScoreError, match="changed since the run planned its shards"):
        read_shard(lake, KEY, moved, ["id"], 30_000).__enter__()
