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
import signal
import sys
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
        shutdown.install(settings)
    except Exception as exc:  # noqa: BLE001 - the app must start even when tracking cannot
        log.warning("usage shipping not started: %s", type(exc).__name__)


def pin_databricks_namespace() -> None:
    """Import the ``databricks`` namespace package (connector, SDK) before Streamlit starts.

    ``streamlit run`` puts the script's folder (``ctg_app/``) first on ``sys.path``; from then on a first
    ``import databricks.sql`` would find ``ctg_app/databricks`` (our connection module) instead and fail. Once the
    namespace package is imported, its submodules resolve through its own path.
    """
    try:
        import databricks  # noqa: F401
    except ImportError:  # the connector is not installed: nothing to shadow
        pass


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # Until Streamlit installs its own handler: a SIGTERM during start-up exits normally, so the drain still runs.
    raise SystemExit(128 + signum)


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
    pin_databricks_namespace()
    start_shipping()
    from streamlit.web import cli as streamlit_cli

    sys.argv = streamlit_argv(args)
    try:
        streamlit_cli.main(prog_name="streamlit")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    from ctg_app.tracking.delivery.shutdown import drain_once

    drain_once()  # the server has stopped: drain now (the exit hook would, too; this keeps the order explicit)
    return code


if __name__ == "__main__":
    sys.exit(main())
