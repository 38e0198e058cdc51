"""Alerts reach a loopback webhook with the DAG, the day, the task and the reason; they never fail a task."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from include.alerting import PlatformAlert, alert_message
from include.config import Settings
from include.dag_settings import default_args
from include.usecases.spec import get_spec
from tests.conftest import free_port, http_conn

RUN_ID = "scheduled__2025-03-31T00:00:00+00:00"
LOG_URL = f"http://localhost:8080/dags/churn_ingest/runs/{RUN_ID}/tasks/ingest"


def task_context(ds_param: str | None = None, **extra: Any) -> dict[str, Any]:
    """What Airflow hands a callback, reduced to what alerts read."""
    ti = SimpleNamespace(dag_id="churn_ingest", task_id="ingest", run_id=RUN_ID, log_url=LOG_URL)
    return {
        "ti": ti,
        "params": {"ds": ds_param},
        "logical_date": dt.datetime(2025, 3, 31, tzinfo=dt.UTC),
        "dag_run": SimpleNamespace(run_after=dt.datetime(2025, 4, 1, tzinfo=dt.UTC)),
        **extra,
    }


def test_a_failure_alert_carries_dag_day_task_run_and_exception(receiver):
    error = ValueError("source billing: no files for ds=2025-03-31")
    PlatformAlert("platform_alerts")(task_context(exception=error))

    [request] = receiver.received
    assert request["path"] == "/hooks/alerts"
    assert request["json"] == {
        "event": "failed",
        "dag_id": "churn_ingest",
        "ds": "2025-03-31",
        "task_id": "ingest",
        "run_id": RUN_ID,
        "reason": "ValueError: source billing: no files for ds=2025-03-31",
        "log_url": LOG_URL,
        "text": f"churn_ingest ds=2025-03-31: ingest failed (run {RUN_ID}): "
        "ValueError: source billing: no files for ds=2025-03-31",
    }


def test_the_day_is_the_runs_partition_and_falls_back_to_the_run_id():
    assert alert_message("failed", task_context("2025-03-30"), ["x"])["ds"] == "2025-03-30"
    # A malformed ds param (often the failure itself) leaves no day: the run id names the run.
    assert alert_message("failed", task_context("yesterday"), ["x"])["ds"] == RUN_ID


def test_exception_text_is_sent_verbatim_not_rendered_as_a_template(receiver):
    PlatformAlert("platform_alerts")(task_context(exception=KeyError("{{ params.ds }} {% oops")))
    assert receiver.received[0]["json"]["reason"] == "KeyError: '{{ params.ds }} {% oops'"


def test_a_rejection_alert_carries_the_versions_and_every_reason(receiver):
    reasons = ["roc_auc 0.7000 < floor 0.7500", "accuracy 0.8000 -> 0.7000: fell 0.1000"]
    PlatformAlert(
        "platform_alerts",
        "UTC",
        "rejected",
        reasons,
        use_case="churn",
        candidate_version=3,
        champion_version=2,
    )(task_context())

    message = receiver.received[0]["json"]
    assert message["event"] == "rejected"
    assert message["reason"] == "; ".join(reasons)
    assert (message["use_case"], message["candidate_version"], message["champion_version"]) == ("churn", 3, 2)
    assert all(reason in message["text"] for reason in reasons)


def test_no_connection_logs_one_warning_and_sends_nothing(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_PLATFORM_ALERTS", raising=False)
    with caplog.at_level(logging.WARNING):
        PlatformAlert("platform_alerts")(task_context(exception=ValueError("boom")))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "platform_alerts" in warnings[0].getMessage() and "boom" in warnings[0].getMessage()


@pytest.mark.parametrize("down", [False, True], ids=["receiver answers 500", "receiver down"])
def test_a_failed_post_is_logged_and_never_raised(receiver, monkeypatch, caplog, down):
    receiver.status = 500
    if down:
        monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_ALERTS", http_conn(f"http://127.0.0.1:{free_port()}/"))
    with caplog.at_level(logging.ERROR, logger="include.alerting"):
        PlatformAlert("platform_alerts")(task_context(exception=ValueError("boom")))
    errors = [r for r in caplog.records if r.name == "include.alerting" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "boom" in errors[0].getMessage()
    assert len(receiver.received) == (0 if down else 1)


def test_every_task_alerts_on_failure_to_the_configured_connection(receiver, monkeypatch):
    assert Settings.from_env().alerts_conn_id == "platform_alerts"
    monkeypatch.setenv("PLATFORM_ALERTS_CONN_ID", "team_hook")
    monkeypatch.setenv("AIRFLOW_CONN_TEAM_HOOK", http_conn(receiver.url))
    monkeypatch.delenv("AIRFLOW_CONN_PLATFORM_ALERTS")

    callback = default_args(get_spec("churn"), Settings.from_env())["on_failure_callback"]
    callback(task_context(exception=RuntimeError("boom")))
    assert receiver.received[0]["json"]["reason"] == "RuntimeError: boom"


def test_an_exception_quoting_data_is_one_capped_line_with_secrets_masked():
    from airflow.sdk._shared.secrets_masker import mask_secret

    from include.alerting import MAX_REASON_CHARS, exception_text

    mask_secret("hunter2-planted")
    foreign = "root:x:0:0:root:/root:/bin/bash\n" * 1000 + "password=hunter2-planted\x1b[31m"
    text = exception_text(ValueError(f"file /tmp/x: unknown columns {foreign}"))

    assert "\n" not in text and "\x1b" not in text
    assert "hunter2-planted" not in text
    assert len(text) <= MAX_REASON_CHARS + 60
    assert text.endswith("more characters in the task log)")
    message = alert_message("failed", task_context(), [text + "\n" + foreign])
    assert len(message["reason"]) <= MAX_REASON_CHARS + 60 and "\n" not in message["text"]
