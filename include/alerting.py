"""Alerts for a failed task and a rejected candidate, POSTed as JSON to an Airflow HTTP connection.

The connection (`platform_alerts`, or `PLATFORM_ALERTS_CONN_ID`) names the webhook, e.g.
`AIRFLOW_CONN_PLATFORM_ALERTS='{"conn_type": "http", "host": "https://hooks.example.com/..."}'`; the
provider's `HttpNotifier` sends the message. Alerting never fails a task: without the connection it
logs a warning, and a failed POST is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

from include.config import Settings
from include.dag_context import partition_from_context
from include.partition import PartitionError

if TYPE_CHECKING:
    from include.runs import RunFacts

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
# A webhook gets the gist; the task log has the whole exception. Capped because an exception may
# quote data (a file's header, a value), which must not leave the platform in bulk.
MAX_REASON_CHARS = 500
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def exception_text(exception: object) -> str:
    """The failure's reason: the exception's type and message, made safe to send (`safe_text`)."""
    if isinstance(exception, BaseException):
        return safe_text(f"{type(exception).__name__}: {exception}")
    return safe_text(str(exception or "unknown error"))


def safe_text(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """`text` as one printable line with Airflow's known secrets masked, cut at `limit` characters."""
    from airflow.sdk._shared.secrets_masker import redact

    line = " ".join(_UNPRINTABLE.sub(" ", str(redact(text))).split())
    if len(line) <= limit:
        return line
    return f"{line[:limit]}... ({len(line) - limit} more characters in the task log)"


def alert_message(
    event: str, context: Mapping[str, Any], reasons: Sequence[str], tz: str = "UTC", **details: Any
) -> dict[str, Any]:
    """The alert for a task's context: who, which day, why, and a one-line `text` for chat webhooks.

    Args:
        event: `failed` or `rejected`.
        context: the task's Airflow context.
        reasons: why; joined with "; " into `reason`.
        tz: the use case's time zone, to name the run's day.
        **details: extra fields of the event (a rejection's versions).

    Returns:
        The JSON payload; `ds` is the run id when the run's day cannot be determined.
    """
    ti = context["ti"]
    try:
        ds = partition_from_context(context, tz).key
    except PartitionError:
        ds = ti.run_id
    reason = safe_text("; ".join(reasons))
    return {
        "event": event,
        "dag_id": ti.dag_id,
        "ds": ds,
        "task_id": ti.task_id,
        "run_id": ti.run_id,
        "reason": reason,
        "log_url": ti.log_url,
        **details,
        "text": f"{ti.dag_id} ds={ds}: {ti.task_id} {event} (run {ti.run_id}): {reason}",
    }


def send_alert(conn_id: str, message: dict[str, Any]) -> bool:
    """POST the message to the connection's URL; True if it was delivered. Logs instead of raising."""
    from airflow.providers.http.notifications import HttpNotifier

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.warning("No connection %r: alert not sent: %s", conn_id, message["text"])
        return False
    try:
        # notify(), not __call__: the message is data (exception text), never a Jinja template.
        HttpNotifier(http_conn_id=conn_id, json=message, extra_options={"timeout": TIMEOUT_SECONDS}).notify(
            {}
        )
    except Exception:
        log.exception("Alert to connection %r failed: %s", conn_id, message["text"])
        return False
    log.info("Alert sent to connection %r: %s", conn_id, message["text"])
    return True


class PlatformAlert(BaseNotifier):
    """Airflow notifier: a task failure (as `on_failure_callback`), or a rejection given its reasons."""

    def __init__(
        self,
        conn_id: str,
        tz: str = "UTC",
        event: str = "failed",
        reasons: Sequence[str] = (),
        **details: Any,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.tz = tz
        self.event = event
        self.reasons = list(reasons)
        self.details = details

    def notify(self, context: Any) -> None:
        reasons = self.reasons or [exception_text(context.get("exception"))]
        send_alert(self.conn_id, alert_message(self.event, context, reasons, self.tz, **self.details))


def rejection_alert(context: Any, run: RunFacts) -> Callable[[Sequence[str], dict[str, Any]], None]:
    """What the gate calls with a rejection's reasons and the versions judged: an alert from this task."""

    def alert(reasons: Sequence[str], details: dict[str, Any]) -> None:
        conn_id = Settings.from_env().alerts_conn_id
        tz = run.spec.schedule.timezone
        PlatformAlert(conn_id, tz, event="rejected", reasons=reasons, use_case=run.use_case, **details)(
            context
        )

    return alert
