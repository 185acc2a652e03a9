"""Usage tracking for the CTG chatbot: record every user action into a durable local spool, ship it to Databricks later.

Public API::

    from ctg_app.tracking import Actions, tracked

    @tracked(Actions.EXECUTE_SQL)
    def run_sql(sql): ...

The package is the pipeline, one folder per step:

- ``recording/`` — the request path: ``tracked``, ``Actions``, ``Event``, ``Spool``, the guard, classifier, redactor, identity;
- ``delivery/`` — ``flush-spool`` and the background flusher ship the spool to the central table exactly once;
- ``analytics/`` — ``get_usage_stats()`` and the spec's reports.

Recording never touches the network and imports nothing from delivery or analytics.
"""

from ctg_app.tracking.recording.actions import Actions
from ctg_app.tracking.recording.api import session_events, track_error, track_user_action_simple
from ctg_app.tracking.recording.classify import ByMessage, ByType, ErrorClassifier
from ctg_app.tracking.recording.decorator import tracked
from ctg_app.errors import ChartError, LlmError, SqlValidationError
from ctg_app.tracking.recording.event import Event
from ctg_app.tracking.recording.guard import health
from ctg_app.tracking.recording.identity import current_session_id, current_user
from ctg_app.redact import Redactor
from ctg_app.tracking.recording.spool import Spool
from ctg_app.tracking.recording.tracker import Tracker, get_tracker, reset_tracker, set_tracker

__all__ = [
    "Actions",
    "ByMessage",
    "ByType",
    "ChartError",
    "ErrorClassifier",
    "Event",
    "LlmError",
    "Redactor",
    "Spool",
    "SqlValidationError",
    "Tracker",
    "UsageStats",
    "current_session_id",
    "current_user",
    "get_tracker",
    "get_usage_stats",
    "health",
    "reset_tracker",
    "session_events",
    "set_tracker",
    "track_error",
    "track_user_action_simple",
    "tracked",
]


def __getattr__(name: str):
    # Analytics is imported on first use only, so importing the recorder never loads pandas-heavy report code.
    if name in ("UsageStats", "get_usage_stats"):
        from ctg_app.tracking.analytics import stats

        return getattr(stats, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
