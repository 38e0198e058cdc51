"""The bench's world: N rows of a use case in PostgreSQL and the lake (churn's also in its sources).

The rows are the use case's real rows (typed as an ingested partition holds them) resampled with
replacement, each under a unique synthetic id in the spec's pattern, in random order: churn's 7,043
Telco rows, or a worked example's (`tools/examples`: `hotel_rates`, regression; `hpc_jobs`,
multiclass). An example's ids are numbered in its pattern (`B00042`); beyond the pattern's digits (a
million rows in five), the bench's copy of the spec lets the pattern's number run to the digits the
ids need (`^B[0-9]{5,6}$`: the real rows' ids still match).
The model is fitted on the real rows with `fit_final` and stored with `dump_model`, so every path
loads it through `load_model`'s checksum check, as the scoring task does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from include.io.bulk import adbc_connection
from include.io.lake import RAW_ZONE, partition_key
from include.io.stores import LocalStore
from include.platform.schema import upgrade
from include.usecases.spec import SPEC_DIR, UseCase, get_spec, load_spec
from tools.demo.seed import assign_days, demo_dates, load_telco
from tools.examples.seed import example_spec, hotel_rows, hpc_rows
from tools.testkit import validate_rows

if TYPE_CHECKING:
    from include.monitoring.reference import Reference
    from include.registry.model_files import FittedModel

log = logging.getLogger(__name__)

DAY = dt.date(2025, 3, 31)
CHURN = "churn"
# The worked examples' real rows, as their source tables hold them.
EXAMPLES: dict[str, Callable[[], pd.DataFrame]] = {"hotel_rates": hotel_rows, "hpc_jobs": hpc_rows}
USE_CASES = (CHURN, *EXAMPLES)
# An example's id pattern: a prefix, then a number of so many digits (`^B[0-9]{5}$`), or of a range
# of digits (`^B[0-9]{5,6}$`).
NUMBERED_ID = re.compile(r"\^(?P<prefix>[A-Za-z]+)\[0-9\]\{(?:[0-9]+,)?(?P<digits>[0-9]+)\}\$")
# Fixed parameters in the middle of each family's search space (no tuning: the bench measures I/O).
PARAMS = {
    "logistic_regression": {"C": 1.0},
    # Ridge: a regression's linear family.
    "linear": {"alpha": 1.0},
    "hist_gradient_boosting": {
        "learning_rate": 0.1,
        "max_iter": 100,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 50,
        "l2_regularization": 1.0,
    },
}
# The families a bench model may be, per task, the default (the task's linear model) first.
FAMILIES = {
    "binary": ("logistic_regression", "hist_gradient_boosting"),
    "multiclass": ("logistic_regression", "hist_gradient_boosting"),
    "regression": ("linear", "hist_gradient_boosting"),
}


@dataclasses.dataclass(frozen=True)
class Bench:
    """Where one bench run's data lives; saved as JSON so each measured path's process can load it."""

    url: str
    workdir: Path
    rows: int
    batch_rows: int
    family: str
    sha256: str = ""
    # The model's version in the bench database's registry (what the scoring paths score with).
    version: int = 0
    use_case: str = CHURN

    @cached_property
    def spec(self) -> UseCase:
        return bench_spec(self.use_case, self.rows)

    @property
    def spec_dir(self) -> Path:
        """The folder of the bench's spec file (`write_spec_file`), which the DAG's functions read."""
        return self.workdir / "specs"

    @property
    def columns(self) -> list[str]:
        """The columns scoring reads: the entity id and the model's features."""
        return [self.spec.entity_id, *self.spec.features.all]

    @property
    def file(self) -> Path:
        return self.workdir / "bench.json"

    @property
    def lake(self) -> LocalStore:
        return LocalStore(self.workdir / "lake")

    @property
    def bucket(self) -> LocalStore:
        return LocalStore(self.workdir / "bucket")

    @property
    def partition_key(self) -> str:
        return partition_key(RAW_ZONE, self.spec.name, DAY)

    @property
    def billing_key(self) -> str:
        return self.spec.source("billing").prefix.format(ds=DAY.isoformat()) + "billing.csv"

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)

    # The model's and the drift's modules (scikit-learn, ~100 MB) are imported only by the paths that
    # score: the ingest paths' peak RSS is then what an ingest task holds.
    def model(self) -> FittedModel:
        from include.registry.model_files import load_model

        return load_model((self.workdir / "model.skops").read_bytes(), self.sha256)

    def reference(self) -> Reference:
        from include.monitoring.reference import Reference

        return Reference.from_dict(json.loads((self.workdir / "reference.json").read_text()))

    def save(self) -> None:
        fields = {**dataclasses.asdict(self), "workdir": str(self.workdir)}
        self.file.write_text(json.dumps(fields))

    @classmethod
    def load(cls, path: Path) -> Bench:
        fields = json.loads(path.read_text())
        return cls(**{**fields, "workdir": Path(fields["workdir"])})


def bench_spec(use_case: str, rows: int) -> UseCase:
    """The spec the bench runs `use_case` with on `rows` rows: churn's, or the example's file with its
    id pattern's number let run to the digits `rows` ids need (module doc).

    Raises:
        ValueError: when an example's id pattern is not a prefix and a number of digits.
    """
    if use_case == CHURN:
        return get_spec(CHURN)
    spec = load_spec(example_spec(use_case))
    prefix, digits = id_format(spec)
    needed = max(digits, len(str(rows - 1)))
    if needed == digits:
        return spec
    raw = spec.model_dump()
    raw["columns"][spec.entity_id]["pattern"] = f"^{prefix}[0-9]{{{digits},{needed}}}$"
    log.info("%s: ids of %d digits for %d rows (the spec's pattern has %d)", use_case, needed, rows, digits)
    return UseCase.model_validate(raw)


def write_spec_file(bench: Bench) -> None:
    """`bench.spec` as a file in `bench.spec_dir`: the shipped or example file, with the bench's id
    pattern (the DAG's functions read a run's spec from a file)."""
    import yaml

    spec = bench.spec
    source = SPEC_DIR / f"{CHURN}.yaml" if spec.name == CHURN else example_spec(spec.name)
    raw = yaml.safe_load(source.read_text())
    if spec.name != CHURN:
        raw["columns"][spec.entity_id]["pattern"] = spec.columns[spec.entity_id].pattern
    bench.spec_dir.mkdir(parents=True, exist_ok=True)
    (bench.spec_dir / f"{spec.name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def id_format(spec: UseCase) -> tuple[str, int]:
    """An example's id prefix and (most) digits, read from its entity id's pattern."""
    pattern = spec.columns[spec.entity_id].pattern or ""
    found = NUMBERED_ID.fullmatch(pattern)
    if found is None:
        raise ValueError(f"{spec.name}: the bench numbers ids as a prefix and digits, not {pattern!r}")
    return found["prefix"], int(found["digits"])


def real_rows(spec: UseCase) -> pd.DataFrame:
    """The use case's real rows typed as the ingest leaves them, each on its day (`ds`): a Telco row
    on its demo snapshot day, an example's on its source's date."""
    if spec.name == CHURN:
        typed = validate_rows(load_telco(), spec.columns, spec.entity_id, "telco").valid
        return typed.assign(ds=pd.to_datetime(assign_days(typed[spec.entity_id], demo_dates())))
    frame = EXAMPLES[spec.name]()
    [source] = spec.sources
    typed = validate_rows(frame, spec.columns, spec.entity_id, spec.name).valid
    days = pd.to_datetime(frame.set_index(spec.entity_id)[source.date_column])
    return typed.assign(ds=days.loc[typed[spec.entity_id]].to_numpy())


def synthetic_ids(n: int) -> pa.Array:
    """`n` distinct ids shaped like Telco's (`1234-ABCDE`): four digits, then five letters."""
    i = np.arange(n, dtype=np.int64)
    chars = np.empty((n, 10), dtype=np.uint8)
    for position, power in enumerate((1000, 100, 10, 1)):
        chars[:, position] = ord("0") + i // power % 10
    chars[:, 4] = ord("-")
    rest = i // 10_000
    for position in range(9, 4, -1):
        chars[:, position] = ord("A") + rest % 26
        rest //= 26
    return pa.array(chars.view("S10").ravel(), pa.binary(10)).cast(pa.string())


def numbered_ids(spec: UseCase, n: int) -> pa.Array:
    """`n` distinct ids in an example's pattern: its prefix, then 0, 1, ... in its digits."""
    prefix, digits = id_format(spec)
    numbers = pc.utf8_lpad(pa.array(np.arange(n)).cast(pa.string()), digits, "0")
    return pc.binary_join_element_wise(prefix, numbers, "")


def resample(real: pd.DataFrame, spec: UseCase, n: int, seed: int = 0) -> pa.Table:
    """`n` rows drawn from `real` with replacement, under unique ids in random order."""
    rng = np.random.default_rng(seed)
    table = pa.Table.from_pandas(real.drop(columns="ds"), preserve_index=False)
    table = table.take(rng.integers(0, len(real), n))
    ids = (synthetic_ids(n) if spec.name == CHURN else numbered_ids(spec, n)).take(rng.permutation(n))
    return table.set_column(table.schema.get_field_index(spec.entity_id), spec.entity_id, ids)


def prepare(bench: Bench) -> Bench:
    """Fit and store the model, then put the same N rows in every place a measured path reads from:
    the lake's partition; for churn, ingest's sources too.

    Returns the bench with the model's checksum, saved to `bench.file`.
    """
    from include.monitoring.reference import build_reference
    from include.registry.model_files import dump_model, sha256_hex
    from include.training.estimators import Trial
    from include.training.preprocess import label_classes
    from include.training.tuning import fit_final, run_trial

    spec = bench.spec
    real = real_rows(spec)
    trial = Trial(f"{bench.family}-bench", bench.family, PARAMS[bench.family])
    # Only a binary model has a threshold, chosen by cross-validation; the other tasks record 0.5.
    threshold = run_trial(spec, trial, real).threshold if spec.task == "binary" else 0.5
    model = fit_final(spec, trial, real, threshold, label_classes(spec, real))
    data = dump_model(model, {"use_case": spec.name, "purpose": "bench"})
    (bench.workdir / "model.skops").write_bytes(data)
    (bench.workdir / "reference.json").write_text(json.dumps(build_reference(real, spec).to_dict()))
    bench = dataclasses.replace(bench, sha256=sha256_hex(data))
    write_spec_file(bench)

    rows = resample(real, spec, bench.rows)
    day = pa.repeat(pa.scalar(DAY, pa.date32()), bench.rows)
    engine = bench.engine()
    upgrade(engine)
    bench = dataclasses.replace(bench, version=register_bench_model(bench.lake, engine, spec, bench))
    if spec.name == CHURN:
        snapshots = spec.source("snapshots")
        source_rows = rows.select(list(snapshots.columns)).append_column(snapshots.date_column, day)
        with adbc_connection(engine) as conn:
            with conn.cursor() as cursor:
                cursor.adbc_ingest(snapshots.table, source_rows, mode="create")
            conn.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()

    partition = bench.lake.root / bench.partition_key
    partition.parent.mkdir(parents=True)
    # Sorted by id in ingest's row groups (the scoring shards are ranges of them), at least 8 so a small
    # bench splits.
    pq.write_table(
        rows.append_column("ds", day.cast(pa.timestamp("us"))).sort_by(spec.entity_id),
        partition,
        compression="zstd",
        row_group_size=min(spec.ingest.row_group_rows, -(-bench.rows // 8)),
    )
    if spec.name == CHURN:
        billing = bench.bucket.root / bench.billing_key
        billing.parent.mkdir(parents=True)
        pacsv.write_csv(rows.select(list(spec.source("billing").columns)), billing)
    bench.save()
    log.info("bench data: %d %s rows in PostgreSQL and the lake", bench.rows, spec.name)
    return bench


def register_bench_model(lake: LocalStore, platform: sa.Engine, spec: UseCase, bench: Bench) -> int:
    """Store the bench's model file in the lake and register it with its drift reference (no gate:
    the runs name it); its version number."""
    from include.provenance import code_version, library_versions
    from include.registry.model_files import store_model
    from include.registry.registry import Registry
    from tools.testkit import version_of_day

    model = bench.model()  # its sha256 checked
    uri, sha = store_model(lake, spec.name, (bench.workdir / "model.skops").read_bytes())
    version = Registry(platform).register(
        version_of_day(
            spec.name,
            "bench-model",
            DAY,
            family=bench.family,
            artifact_uri=uri,
            sha256=sha,
            params=dict(PARAMS[bench.family]),
            threshold=model.threshold,
            reference=json.loads((bench.workdir / "reference.json").read_text()),
            library_versions=library_versions(),
            code_version=code_version(),
        )
    )
    return version.version
