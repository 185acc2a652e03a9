"""``python -m ctg_app.serve [streamlit options]``: serve the app with usage shipping tied to the server's life.

Streamlit has no server-start hook: a script only runs when a browser session opens, so a flusher started by the app
script ships nothing until someone visits, and nothing stops it in order at shutdown. This launcher, used by
``ctg-app run`` and ``app.yaml``:

1. starts the background flusher (``BACKGROUND_FLUSH``) before the server, in this process;
2. registers the drain on shutdown (``ctg_app.tracking.delivery.shutdown``): on SIGTERM Streamlit stops its server and
   returns, and the drain flushes, then parks, within ``TRACKING_DRAIN_TIMEOUT_S``;
3. runs Streamlit's own ``streamlit run ctg_app/app.py`` in-process with the app's defaults (headless, no usage
   statistics, minimal toolbar) and the given options.

Tracking failures never stop the server from starting.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

APP_PATH = Path(__file__).resolve().parent / "app.py"
#: The options the app is always served with (later options on the command line win).
DEFAULT_OPTIONS = ("--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal")

log = logging.getLogger("ctg_app.serve")


def streamlit_argv(extra: Sequence[str] = ()) -> list[str]:
    """``streamlit run`` arguments for the app: the defaults, then ``extra``."""
    return ["streamlit", "run", str(APP_PATH), *DEFAULT_OPTIONS, *[a for a in extra if a != "--"]]


def start_shipping() -> None:
    """Start the background flusher and register the shutdown drain (never raises)."""
    try:
        from ctg_app.settings import get_settings
        from ctg_app.tracking.delivery import shutdown
        from ctg_app.tracking.delivery.background import start_background_flusher

        settings = get_settings()
        if settings.background_flush:
            start_background_flusher(settings)
        if settings.park_volume:  # the SDK's import takes seconds; pay it now, not in the drain's budget
            import databricks.sdk  # noqa: F401
        shutdown.install(settings)
    except Exception as exc:  # noqa: BLE001 - the app must start even when tracking cannot
        log.warning("usage shipping not started: %s", type(exc).__name__)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # Until Streamlit installs its own handler: a SIGTERM during start-up exits normally, so the drain still runs.
    _mark_signal()
    raise SystemExit(128 + signum)


def _mark_signal() -> None:
    from ctg_app.tracking.delivery.shutdown import mark_signal

    mark_signal()


def time_signals_from_streamlit() -> bool:
    """Have Streamlit's own SIGTERM / SIGINT handler also note the signal's time (the drain's deadline counts from it).

    Streamlit installs its handler once its server runs (``bootstrap._set_up_signal_handler``); this wraps that
    function so the handler it installs is wrapped too. Returns False (the deadline then counts from the drain's start)
    when this Streamlit has no such function.
    """
    from streamlit.web import bootstrap

    original = getattr(bootstrap, "_set_up_signal_handler", None)
    if original is None or getattr(original, "ctg_wrapped", False):
        return original is not None

    def set_up(server: object) -> None:
        original(server)
        for signum in (signal.SIGTERM, signal.SIGINT):
            handler = signal.getsignal(signum)
            if callable(handler):
                def timed(number: int, frame: object, _inner=handler) -> None:
                    _mark_signal()
                    _inner(number, frame)

                signal.signal(signum, timed)

    set_up.ctg_wrapped = True  # type: ignore[attr-defined]
    bootstrap._set_up_signal_handler = set_up
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the app until SIGTERM / SIGINT; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    logger = logging.getLogger("ctg_app")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    start_shipping()
    from streamlit.web import cli as streamlit_cli

    if not time_signals_from_streamlit():
        log.info("this Streamlit has no signal hook: the drain's deadline counts from the server's stop")
    sys.argv = streamlit_argv(args)
    try:
        streamlit_cli.main(prog_name="streamlit")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    from ctg_app.tracking.delivery.shutdown import drain_once

    drain_once()  # the server has stopped: drain now (the exit hook would, too; this keeps the order explicit)
    _exit_now_if_blocked(code)
    return code


def _exit_now_if_blocked(code: int) -> None:
    """Exit at once when a non-daemon thread would hold the interpreter's exit past the drain's deadline.

    The drain abandons hung warehouse calls at its deadline, but a call hung inside a thread pool's worker (the flush's
    sender) would still be joined at interpreter exit, for up to the connector's own retry budget - past the 15 s
    after which Databricks Apps kills the app anyway. Everything worth keeping is committed (spool) or parked by now.
    """
    blocking = [t.name for t in threading.enumerate()
                if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not blocking:
        return
    log.warning("exiting without waiting for %s (their work is released or parked)", ", ".join(blocking))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
