"""`make up-celery`: Airflow on the CeleryExecutor with two (or `--workers`) workers on this machine.

python -m tools.scaleout                 # until Ctrl-C (or SIGTERM), which stops every process
python -m tools.scaleout --workers 3 --concurrency 2
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from include.config import Settings
from tools.scaleout.stack import (
    REPO,
    CeleryAirflow,
    CeleryLayout,
    ServiceUnavailable,
    check_services,
    prepare,
    stack_env,
    write_env_file,
)

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    defaults = CeleryLayout(home=REPO / ".celery")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=defaults.home, help="the stack's folder (.celery)")
    parser.add_argument("--port", type=int, default=defaults.port, help="the api-server's port")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="Celery workers to start")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="task slots per worker")
    parser.add_argument("--postgres-url", default=defaults.postgres_url, help="a role that may create DBs")
    parser.add_argument("--broker-url", default=defaults.broker_url, help="the Redis broker")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up lines hide the progress
    # `kill` (SIGTERM) unwinds like Ctrl-C, so every process group is stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    layout = CeleryLayout(
        home=args.home.resolve(),
        port=args.port,
        postgres_url=args.postgres_url,
        broker_url=args.broker_url,
        workers=args.workers,
        concurrency=args.concurrency,
        queues=Settings.from_env().queues,
    )
    try:
        check_services(layout)
    except ServiceUnavailable as exc:
        sys.exit(f"up-celery: {exc}")
    env = stack_env(layout, os.environ)
    prepare(layout, env)
    airflow = CeleryAirflow(layout, env)
    write_env_file(layout.home / "stack.env", airflow.env)
    log.info("starting Airflow and %d Celery workers (about a minute)", layout.workers)
    try:
        airflow.start(timeout=300)
        print(airflow.describe(), flush=True)
        print(f"  its settings, to start another worker by hand: source {layout.home / 'stack.env'}")
        print("Ctrl-C stops every process.", flush=True)
        while True:
            time.sleep(5)
            airflow.check_running()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping every process group")
        airflow.stop()


if __name__ == "__main__":
    main()
