"""The spec's plain functions (``track_user_action_simple``, ``track_error``) and the session's event list."""

from __future__ import annotations

from typing import Any

from ctg_app.tracking.recording.actions import Actions
from ctg_app.tracking.recording.event import STATUS_ERROR
from ctg_app.tracking.recording.guard import fail_safe
from ctg_app.tracking.recording.identity import current_session_id
from ctg_app.tracking.recording.tracker import get_tracker


@fail_safe("track_user_action_simple", fallback=False)
def track_user_action_simple(user_email: str | None, action: str) -> bool:
    """Record ``action`` for ``user_email`` (the default user when empty). True when the event is in the spool."""
    tracker = get_tracker()
    return tracker.record(str(action), user=tracker.normalise_user(user_email)) is not None


@fail_safe("track_error", fallback=False)
def track_error(user_email: str | None, error_type: str, error_message: object) -> bool:
    """Record an error for ``user_email``.

    ``error_type`` is an error action (``sql_error``, ``llm_error`` …) or a free-form type such as ``"TimeoutError"``;
    a free-form type is recorded under ``app_error`` with the type kept in ``error_type``. The message is redacted
    and bounded. True when the event is in the spool.
    """
    tracker = get_tracker()
    error_type = str(error_type)
    action = error_type if error_type in Actions.errors() else Actions.APP_ERROR
    event = tracker.record(action, status=STATUS_ERROR, error_type=error_type, error_message=error_message,
                           user=tracker.normalise_user(user_email))
    return event is not None


@fail_safe("session_events", fallback=[], events=0)
def session_events(limit: int = 50) -> list[dict[str, Any]]:
    """Events this Streamlit session recorded, oldest first (the newest ``limit``); empty outside Streamlit."""
    session_id = current_session_id()
    if session_id is None:
        return []
    return get_tracker().spool.rows(session_id=session_id, limit=limit)
