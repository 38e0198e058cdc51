"""Bad inputs: the corpus under `tests/reliability_corpus/`, each case run and its outcome compared.

Every case names the outcome expected today: an `error` (a substring of the exception's text), a
`quarantine` reason (a substring of a quarantined row's reason), `accepted`, `accepted_on` a day,
or, for a request to the scoring service, its HTTP `status` and what its body holds.
A case marked `xfail` is a finding not fixed yet: what it does today is recorded, and counted apart.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "reliability_corpus"
DAY = "2025-03-05"
KINDS = ("spec", "params", "keys", "model_files", "billing", "sql", "api")
WORLD_KINDS = ("billing", "sql")


@dataclass(frozen=True)
class Case:
    kind: str
    id: str
    body: dict[str, Any]

    @property
    def expect(self) -> dict[str, Any]:
        return self.body["expect"]

    @property
    def xfail(self) -> str | None:
        return self.body.get("xfail")


@dataclass
class Outcome:
    case: str
    ok: bool
    actual: dict[str, Any]
    xfail: str | None = None


@dataclass
class CorpusFigures:
    cases: int = 0
    as_expected: int = 0
    unexpected: int = 0
    known_findings_still_open: int = 0
    known_findings_now_fixed: int = 0
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_cases(folder: Path = CORPUS) -> list[Case]:
    """Every case of every kind's file, in file order."""
    return [
        Case(kind, body["id"], body)
        for kind in KINDS
        for body in yaml.safe_load((folder / f"{kind}.yaml").read_text())
    ]


def matches(expect: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Whether what happened is what the case expects."""
    if "status" in expect:
        body = actual.get("body", "")
        return (
            actual.get("status") == expect["status"]
            and all(text in body for text in expect.get("body", []))
            and not any(text in body for text in expect.get("not_in_body", []))
        )
    if "error" in expect:
        return expect["error"] in actual.get("error", "")
    if "error" in actual:
        return False
    reasons = actual.get("reasons", [])
    if "quarantine" in expect:
        found = any(expect["quarantine"] in r for r in reasons)
        limit = expect.get("max_reason_chars")
        return found and (limit is None or max(len(r) for r in reasons) <= limit)
    if "accepted_on" in expect:
        return bool(actual.get("read_on_day"))
    return not reasons


def _outcome(call) -> dict[str, Any]:
    try:
        result = call()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:4000]}
    return result or {}


def run_spec(case: Case) -> dict[str, Any]:
    from include.usecases.spec import SPEC_DIR, load_spec

    raw = copy.deepcopy(yaml.safe_load((SPEC_DIR / "churn.yaml").read_text()))
    for dotted, value in case.body["set"].items():
        *parents, last = dotted.split(".")
        node = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return _outcome(lambda: load_spec(path) and {})


def run_params(case: Case) -> dict[str, Any]:
    from include.dag_context import partition_from_context

    def call() -> dict[str, Any]:
        context = {
            "params": json.loads(case.body["conf"]),
            "logical_date": dt.datetime(2025, 3, 5, tzinfo=dt.UTC),
            "dag_run": None,
        }
        return {"ds": partition_from_context(context).key}

    return _outcome(call)


def run_keys(case: Case) -> dict[str, Any]:
    from include.io.stores import LocalStore

    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "lake")
        (Path(tmp) / "outside").mkdir()
        (Path(tmp) / "outside" / "passwd").write_text("root:x:0:0")
        if link := case.body.get("symlink"):
            (store.root / link).parent.mkdir(parents=True)
            (store.root / link).symlink_to(Path(tmp) / "outside")

        def call() -> dict[str, Any]:
            key = case.body["key"]
            if case.expect.get("accepted"):
                store.put_bytes(key, b"x")
            return {"read": len(store.read_bytes(key))}

        return _outcome(call)


def run_model_files(case: Case) -> dict[str, Any]:
    import os as _os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from include.io.stores import LocalStore
    from include.registry.model_files import load_version_model, sha256_hex

    if case.body.get("skops_untrusted"):
        content = sio.dumps({"pipeline": FunctionTransformer(func=_os.system)})
    elif "content_hex" in case.body:
        content = bytes.fromhex(case.body["content_hex"])
    else:
        content = case.body["content_text"].encode()
    with tempfile.TemporaryDirectory() as tmp:
        lake = LocalStore(tmp)
        lake.put_bytes("models/churn/v1.skops", content)
        version = SimpleNamespace(
            use_case="churn",
            version=1,
            artifact_uri=lake.uri("models/churn/v1.skops"),
            sha256=case.body.get("sha256", sha256_hex(content)),
        )
        return _outcome(lambda: load_version_model(lake, version) and {})


# One valid churn row, as a client sends it (docs/serving.md's example): the base of `rows` cases.
API_ROW = {
    "customerID": "7590-VHVEG",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 1,
    "PhoneService": "No",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": 29.85,
}
API_TOKEN = "corpus-token"


def run_api(case: Case) -> dict[str, Any]:
    """One request to the scoring service (or, with `app: ui`, the UI app) on a fresh platform database
    and lake; its status and body.

    With `champion: missing_file`, v1 is registered and promoted with no file behind it, so the
    service's load fails with the file's path in its message.
    """
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from include.io.stores import LocalStore
    from include.platform.schema import upgrade
    from include.registry.registry import Registry
    from include.serving.app import create_app
    from include.serving.champion import ChampionSource
    from include.serving.service import ScoringService
    from include.serving.settings import ServingSettings
    from include.usecases.spec import get_spec
    from tools.testkit import version_of_day

    request = case.body["request"]
    with tempfile.TemporaryDirectory() as tmp:
        platform, lake = sa.create_engine(f"sqlite:///{tmp}/platform.db"), LocalStore(Path(tmp) / "lake")
        upgrade(platform)
        if case.body.get("champion") == "missing_file":
            registry = Registry(platform)
            version = registry.register(
                version_of_day(
                    "churn",
                    "corpus",
                    dt.date(2025, 3, 5),
                    family="random_forest",
                    artifact_uri=lake.uri("models/churn/v1.skops"),
                    sha256="0" * 64,
                )
            )
            registry.promote("churn", version.version, expected=None)
        if case.body.get("app") == "ui":
            answer = _ui_answer(request, platform, Path(tmp))
            platform.dispose()
            return {"status": answer.status_code, "body": answer.text}
        service = ScoringService([get_spec("churn")], ChampionSource(platform, lake), poll_seconds=3600)
        headers = {"Content-Type": "application/json"}
        token = {"token": API_TOKEN, "wrong": "not-the-token", "none": None}[request.get("auth", "token")]
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if "rows" in request:
            rows = [{**API_ROW, **row} for row in request["rows"]]
            raw = request.get("raw", {})  # field -> its value as JSON text, in the first row
            rows[0].update({name: f"@@{name}@@" for name in raw})
            text = json.dumps({"rows": rows})
            for name, value in raw.items():
                text = text.replace(f'"@@{name}@@"', value)
            content = text.encode()
        elif "content_hex" in request:
            content = bytes.fromhex(request["content_hex"])
        elif "content_repeat" in request:
            content = (request["content_repeat"]["text"] * request["content_repeat"]["times"]).encode()
        else:
            content = request.get("content_text", "").encode("utf-8", errors="surrogatepass")
        method = request.get("method", "POST")
        app = create_app(service, API_TOKEN, ServingSettings(poll_seconds=3600))
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.request(
                method,
                request.get("path", "/v1/churn/score"),
                headers=headers,
                content=content if method == "POST" else None,
            )
        platform.dispose()
        body = answer.text.replace(str(lake.root), "@LAKE")
        return {"status": answer.status_code, "body": body}


def _ui_answer(request: dict[str, Any], platform, tmp: Path):
    """A GET to the UI app by a user of `request["role"]`, judged by Airflow's simple auth manager.

    The user is given as a validly signed token would give it (the token's own checks, which need
    Airflow's metadata database, are the fuzz's and the unit tests'); the manager's generated
    passwords go to `tmp`, not the Airflow home.
    """
    import os

    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from include.ui.app import create_app, platform_db
    from include.ui.auth import current_user

    setting = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    before = os.environ.get(setting)
    os.environ[setting] = str(tmp / "passwords.json")
    try:
        init_auth_manager()
        app = create_app()
        app.dependency_overrides[current_user] = lambda: SimpleAuthManagerUser(
            username="corpus", role=request["role"]
        )
        app.dependency_overrides[platform_db] = lambda: platform
        with TestClient(app, raise_server_exceptions=False) as client:
            return client.get(request["path"])
    finally:
        purge_cached_app()
        if before is None:
            os.environ.pop(setting, None)
        else:
            os.environ[setting] = before


def _day_read(world, ids: list[str] | None = None) -> dict[str, Any]:
    """Ingest the day; the quarantine reasons, and whether `ids` were read on it."""
    import pandas as pd

    from tools.reliability import tasks

    def call() -> dict[str, Any]:
        result = tasks.ingest(DAY, "corpus")
        reasons, read = [], set()
        if result["quarantine_uri"]:
            quarantine = pd.read_parquet(result["quarantine_uri"].removeprefix("file://"))
            reasons = list(quarantine["reasons"])
            read |= set(quarantine["entity_id"])
        read |= set(pd.read_parquet(result["partition_uri"].removeprefix("file://"))["customerID"])
        return {"reasons": reasons[:20], "read_on_day": bool(ids) and set(ids) <= read}

    return _outcome(call)


def run_billing(case: Case, world) -> dict[str, Any]:
    import io

    import pandas as pd

    folder = world.bucket / "billing" / f"ds={DAY}"
    [path] = [p for p in folder.iterdir() if p.is_file()]
    original = path.read_bytes()
    body = case.body
    try:
        frame = pd.read_csv(io.BytesIO(original), dtype="str", keep_default_na=False)
        if cell := body.get("cell"):
            value = "x" * 1_000_000 if cell["value"] == "@MB" else cell["value"]
            frame.loc[cell["row"], cell["column"]] = value
        if "duplicate_row" in body:
            frame = pd.concat([frame, frame.iloc[[body["duplicate_row"]]]], ignore_index=True)
        if column := body.get("drop_column"):
            frame = frame.drop(columns=[column])
        if column := body.get("add_column"):
            frame[column] = "1"
        if "replace_hex" in body:
            path.write_bytes(bytes.fromhex(body["replace_hex"]))
        elif "replace_text" in body:
            path.write_text(body["replace_text"])
        else:
            path.write_text(frame.to_csv(index=False))
        extra = body.get("extra_file")
        if extra:
            (folder / extra["name"]).parent.mkdir(parents=True, exist_ok=True)
            (folder / extra["name"]).write_bytes(original if extra.get("copy_of_day") else b"")
        return _day_read(world)
    finally:
        path.write_bytes(original)
        if extra := body.get("extra_file"):
            (folder / extra["name"]).unlink(missing_ok=True)


def run_sql(case: Case, world) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{world.root / 'source.db'}")
    table = sa.Table("customer_snapshots", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(sa.literal_column("rowid"), table).where(table.c.snapshot_date.like(f"{DAY}%")).limit(1)
        ).first()
    original = dict(row._mapping)
    rowid = original.pop("rowid")
    inserted = None
    try:
        with engine.begin() as conn:
            if update := case.body.get("update"):
                conn.execute(
                    sa.text(
                        "UPDATE customer_snapshots SET "
                        + ", ".join(f'"{c}" = :{c}' for c in update)
                        + " WHERE rowid = :rowid"
                    ),
                    {**update, "rowid": rowid},
                )
            if insert := case.body.get("insert"):
                # As text, verbatim: what a source system that writes its own date strings stores.
                inserted = "9999-ZZZZZ"
                values = {**original, **insert, "customerID": inserted}
                columns = ", ".join(f'"{c}"' for c in values)
                binds = ", ".join(f":{c}" for c in values)
                conn.execute(
                    sa.text(f"INSERT INTO customer_snapshots ({columns}) VALUES ({binds})"),
                    values,
                )
        return _day_read(world, [inserted] if inserted else None)
    finally:
        with engine.begin() as conn:
            if inserted:
                conn.execute(table.delete().where(table.c.customerID == inserted))
            conn.execute(
                sa.text(
                    "UPDATE customer_snapshots SET "
                    + ", ".join(f'"{c}" = :{c}' for c in original)
                    + " WHERE rowid = :rowid"
                ),
                {**original, "rowid": rowid},
            )
        engine.dispose()


def run_case(case: Case, world=None) -> Outcome:
    """Run one case (`world`, a seeded `World` with its env applied, for billing and sql cases)."""
    runner = {
        "spec": run_spec,
        "params": run_params,
        "keys": run_keys,
        "model_files": run_model_files,
        "api": run_api,
    }
    actual = runner[case.kind](case) if case.kind in runner else globals()[f"run_{case.kind}"](case, world)
    return Outcome(f"{case.kind}/{case.id}", matches(case.expect, actual), actual, case.xfail)


def run_corpus(world) -> CorpusFigures:
    """Every case; an xfail case that now behaves as expected is counted as fixed."""
    figures = CorpusFigures()
    for case in load_cases():
        outcome = run_case(case, world)
        figures.cases += 1
        if case.xfail:
            figures.known_findings_still_open += not outcome.ok
            figures.known_findings_now_fixed += outcome.ok
        else:
            figures.as_expected += outcome.ok
            figures.unexpected += not outcome.ok
        figures.outcomes.append({**asdict(outcome), "actual": _short(outcome.actual)})
    return figures


def _short(actual: dict[str, Any]) -> dict[str, Any]:
    """The outcome with long texts cut, for the report."""
    return {
        k: (v[:300] if isinstance(v, str) else [r[:300] for r in v] if isinstance(v, list) else v)
        for k, v in actual.items()
    }
