"""The CTG chatbot's Streamlit entry point: ``streamlit run ctg_app/app.py`` (or ``ctg-app run``).

Records ``app_start`` once per browser session, shows who the user is, and runs the selected page. Add a page by
appending an ``st.Page`` to :func:`pages`; page scripts live in ``ctg_app/ui/``.

Why not ``ctg_app/pages/``: Streamlit treats a folder named ``pages`` next to the entry script as a legacy (v1)
multipage app and may then run ``pages/<name>.py`` *without* this script (measured with AppTest on reruns: no
``app_start`` bookkeeping, no identity, no debug sidebar). Any other folder name avoids that.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT.parent) not in sys.path:  # `streamlit run ctg_app/app.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT.parent))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from ctg_app.ui.operations import record_app_start  # noqa: E402
from ctg_app.ui.compat import stretch  # noqa: E402
from ctg_app.ui.layout import open_at_top, style_identity  # noqa: E402
from ctg_app.settings import get_settings  # noqa: E402
from ctg_app.tracking import current_user, session_events  # noqa: E402
from ctg_app.tracking.recording.guard import fail_safe  # noqa: E402

APP_STARTED = "ctg_app_started"


def pages() -> list[st.Page]:
    """The app's pages, the first one the default."""
    from ctg_app.ui.analytics import analytics_pages  # "Usage analytics": only for ADMIN_EMAILS

    return [st.Page(str(ROOT / "ui" / "chat.py"), title="Chat", icon="💬", url_path="chat", default=True),
            *analytics_pages()]


def start_session() -> None:
    """Record ``app_start`` on the first run of a browser session (never on reruns)."""
    if not st.session_state.get(APP_STARTED):
        st.session_state[APP_STARTED] = True
        record_app_start()


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it between tests)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: D102 - StreamHandler.__init__ assigns it; the property ignores that
        pass


def configure_logging() -> None:
    """Console logging for the app's own loggers: every event at DEBUG when ``DEBUG_LOGGING`` is on (spec: "Debug
    Mode"), INFO otherwise. The handler is added once per process (this script re-runs on every interaction)."""
    logger = logging.getLogger("ctg_app")
    if not any(getattr(h, "ctg_app_console", False) for h in logger.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.ctg_app_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if get_settings().debug_logging else logging.INFO)


@fail_safe("background_flusher", events=0)
def start_shipping() -> None:
    """Start the in-app background flusher when ``BACKGROUND_FLUSH`` is on (one per process; later calls are no-ops).
    Under the launcher (``python -m ctg_app.serve``, what ``ctg-app run`` and ``app.yaml`` use) it already runs,
    started with the server, and the launcher also drains it on shutdown; plain ``streamlit run`` gets neither.

    Imported lazily: the flush pulls in the Databricks connector, which the request path never needs.
    """
    if get_settings().background_flush:
        from ctg_app.tracking.delivery.background import start_background_flusher

        start_background_flusher()


def render_identity() -> None:
    """Who the app thinks the user is."""
    style_identity()
    st.sidebar.caption("Signed in as")
    st.sidebar.text(current_user())  # plain text: the value may come from a request header


def render_debug_events() -> None:
    """In debug mode, the events this session recorded."""
    if not get_settings().debug_logging:
        return
    with st.sidebar.expander("Tracked events (this session)", expanded=False):
        events = session_events(limit=50)
        if events:
            frame = pd.DataFrame(events)
            keep = [c for c in ("timestamp", "action", "operation", "status", "error_type", "duration_ms") if c in frame]
            st.dataframe(frame[keep], hide_index=True, **stretch(st.dataframe))
        else:
            st.caption("No events yet.")


def main() -> None:
    """Run the app."""
    st.set_page_config(page_title="CTG Chatbot", page_icon="💬", layout="wide")
    configure_logging()
    first_view = not st.session_state.get(APP_STARTED)
    start_session()
    if first_view:
        open_at_top()  # a phone would otherwise open the welcome scrolled down (ui/layout.py)
    start_shipping()
    render_identity()
    page = st.navigation(pages())
    page.run()
    render_debug_events()


main()
