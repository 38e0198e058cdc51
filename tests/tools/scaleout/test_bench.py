"""The Celery bench's day, without a stack."""

from __future__ import annotations

import pyarrow.parquet as pq
import sqlalchemy as sa

from include.io.stores import LocalStore
from include.platform.schema import upgrade
from include.platform.tables import ingest_runs
from include.scoring.task import record_disagreement
from include.usecases.spec import get_spec
from tools.scaleout.bench import DAY, day_rows, put_day, write_day


def test_the_day_is_in_ingests_row_groups_with_a_record_the_sensor_accepts(tmp_path):
    spec = get_spec("churn")
    spec = spec.model_copy(update={"ingest": spec.ingest.model_copy(update={"row_group_rows": 300})})
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    lake = LocalStore(tmp_path / "lake")

    write_day(tmp_path / "day.parquet", spec, day_rows(spec, 1_000))

    groups = put_day(lake, engine, spec, tmp_path / "day.parquet")

    assert groups == 4  # 300 + 300 + 300 + 100
    [path] = (tmp_path / "lake").rglob("*.parquet")
    table = pq.read_table(path)
    assert table.num_rows == len(set(table.column(spec.entity_id).to_pylist())) == 1_000
    with engine.connect() as conn:
        record = conn.execute(sa.select(ingest_runs)).one()
    assert (record.ds, record.rows_written) == (DAY, 1_000)
    assert record_disagreement(lake, spec.name, DAY, record) is None
