"""The Celery bench's day and results file, without a stack."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import sqlalchemy as sa

from include.io.stores import LocalStore
from include.platform.schema import upgrade
from include.platform.tables import ingest_runs
from include.scaleout.bench import DAY, day_rows, put_day, save
from include.scoring.task import record_disagreement
from include.usecases.spec import get_spec


def test_the_day_is_in_ingests_row_groups_with_a_record_the_sensor_accepts(tmp_path):
    spec = get_spec("churn")
    spec = spec.model_copy(update={"ingest": spec.ingest.model_copy(update={"row_group_rows": 300})})
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    lake = LocalStore(tmp_path / "lake")

    groups = put_day(lake, engine, spec, day_rows(spec, 1_000))

    assert groups == 4  # 300 + 300 + 300 + 100
    [path] = (tmp_path / "lake").rglob("*.parquet")
    table = pq.read_table(path)
    assert table.num_rows == len(set(table.column(spec.entity_id).to_pylist())) == 1_000
    with engine.connect() as conn:
        record = conn.execute(sa.select(ingest_runs)).one()
    assert (record.ds, record.rows_written) == (DAY, 1_000)
    assert record_disagreement(lake, spec.name, DAY, record) is None


def test_results_go_under_sharded_scoring_beside_what_is_there(tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"scoring": {"rows": 1}, "sharded_scoring": {"one_task_s": 9.5}}))

    save(out, {"rows": 5})

    assert json.loads(out.read_text()) == {
        "scoring": {"rows": 1},
        "sharded_scoring": {"one_task_s": 9.5, "celery": {"rows": 5}},
    }
