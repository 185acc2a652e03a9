"""What the chat shows while a stopped SQL warehouse starts: an ``st.status`` with the elapsed time.

Wire it around the call that runs SQL (the data source reports the wait through
:func:`ctg_app.chatbot.data.source.reporting_warehouse_start`)::

    with warehouse_start_status():
        df = ops.execute_sql(vn, answer.sql)

Nothing is drawn unless the warehouse is actually starting; when the query then runs, the status closes as complete,
and when the wait ends in :class:`~ctg_app.chatbot.data.source.WarehouseStartTimeout` it closes as an error whose
text :func:`start_timeout_message` gives the page to show.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

import streamlit as st

from ctg_app.chatbot.data.source import WarehouseStartTimeout, acting_as, reporting_warehouse_start
from ctg_app.ui.user_token import user_access_token

log = logging.getLogger(__name__)

LABEL = "Starting the SQL warehouse…"


class WarehouseStartStatus:
    """An ``on_wait(elapsed_s)`` callback that opens one ``st.status`` on the first call and updates it after."""

    def __init__(self, container: Any = None) -> None:
        # The query usually runs inside an ``st.cache_data`` function, and Streamlit records every element created
        # there to replay it on each cache hit (measured: a stale "Starting…" status on the next rerun). Drawing in
        # the context captured here, outside that function, keeps the status out of the cache.
        self._context = contextvars.copy_context()
        self._slot = (container if container is not None else st).empty()
        self._status: Any = None
        self._text: Any = None
        self.elapsed_s = 0.0

    def __call__(self, elapsed_s: float) -> None:
        """Show (or refresh) the status with ``elapsed_s`` seconds waited so far."""
        self.elapsed_s = float(elapsed_s)
        self._context.run(self._draw)

    def _draw(self) -> None:
        if self._status is None:
            self._status = self._slot.status(LABEL, expanded=True)
            self._text = self._status.empty()
        self._text.write(f"Waiting for the SQL warehouse to start: {self.elapsed_s:.0f} s so far. "
                         "A stopped warehouse usually needs a few minutes.")

    @property
    def shown(self) -> bool:
        """True once the warehouse was found starting (the status is on the page)."""
        return self._status is not None

    def finish(self, error: BaseException | None = None) -> None:
        """Close the status: complete when the query ran, error when it gave up."""
        if self._status is None:
            return
        if error is None:
            self._status.update(label=f"SQL warehouse started ({self.elapsed_s:.0f} s)", state="complete",
                                expanded=False)
        else:
            self._status.update(label="The SQL warehouse did not start in time", state="error", expanded=False)


@contextlib.contextmanager
def warehouse_start_status(container: Any = None) -> Iterator[WarehouseStartStatus]:
    """Show "Starting the SQL warehouse…" with the elapsed time while SQL run in the block meets a starting
    warehouse. Exceptions pass through unchanged (``@tracked`` has recorded them once already)."""
    status = WarehouseStartStatus(container)
    try:
        # the one place chat SQL runs from the page: it runs on behalf of the signed-in user (CTG_QUERY_IDENTITY)
        with reporting_warehouse_start(status), acting_as(user_access_token()):
            yield status
    except BaseException as exc:
        status.finish(exc)
        raise
    status.finish()


def start_timeout_message(exc: BaseException) -> str | None:
    """The message to show for a warehouse that did not start in time, else None (use the usual one)."""
    return str(exc) if isinstance(exc, WarehouseStartTimeout) else None
