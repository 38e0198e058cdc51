"""The host name a task instance records: the Celery worker's name when workers share a machine.

Airflow stores `hostname_callable()` on each task instance. Two workers on one machine have the same
FQDN, so the stack sets `PLATFORM_WORKER_NAME` per worker (its Celery node name) and points
`[core] hostname_callable` here; every other process keeps the machine's FQDN.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """`PLATFORM_WORKER_NAME` if set, else the machine's FQDN."""
    return os.environ.get("PLATFORM_WORKER_NAME") or socket.getfqdn()
