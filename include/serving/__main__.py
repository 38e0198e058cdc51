"""`python -m include.serving [--host H] [--port P] [--workers N]`: the scoring service on uvicorn
(`make serve`); its processes and its HTTP protocol are `include.serving.server`'s."""

from __future__ import annotations

import argparse

import uvicorn

from include.serving.server import configure_logging, serve
from include.serving.settings import ServingSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    parser.add_argument("--workers", type=int, help="server processes (default: PLATFORM_SERVING_WORKERS)")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    config = uvicorn.Config(
        "include.serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        loop="uvloop",
        http="include.serving.server:OneWriteHttpTools",
    )
    serve(config, args.workers or ServingSettings.from_env().workers)


if __name__ == "__main__":
    main()
