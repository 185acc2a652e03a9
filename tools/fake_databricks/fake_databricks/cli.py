"""``ctg-fake-warehouse``: run the fake Databricks SQL warehouse until SIGTERM/SIGINT.

On start it prints one ``export NAME=value`` line per environment variable of :meth:`FakeWarehouse.env`
(so ``eval "$(ctg-fake-warehouse ... &)"``-style wrappers and tests can read the port), then serves.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading
from typing import Optional, Sequence

from . import DEFAULT_TOKEN, FakeWarehouse

logger = logging.getLogger("fake_databricks.cli")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console command; returns the process exit code."""
    ap = argparse.ArgumentParser(prog="ctg-fake-warehouse", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one)")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ap.add_argument("--db", default=None, help="DuckDB file (default: in memory)")
    ap.add_argument("--tls", action="store_true", help="serve HTTPS with a generated self-signed certificate")
    ap.add_argument("--token", default=DEFAULT_TOKEN, help="accepted bearer token")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        logger.info("signal %s: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    wh = FakeWarehouse(db_path=args.db, tls=args.tls, token=args.token, port=args.port, host=args.host).start()
    for name, value in wh.env().items():
        sys.stdout.write(f"export {name}={shlex.quote(value)}\n")
    sys.stdout.flush()
    logger.info("serving %s", wh.uri)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        wh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
