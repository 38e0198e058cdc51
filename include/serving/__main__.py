"""`python -m include.serving [--host H] [--port P]`: the scoring service on uvicorn (`make serve`)."""

from __future__ import annotations

import argparse
import logging

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        "include.serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
