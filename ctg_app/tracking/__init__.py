"""Usage tracking for the CTG chatbot: record every user action into a durable local spool, ship it to Databricks later.

Public API::

    from ctg_app.tracking import Actions, tracked

    @tracked(Actions.EXECUTE_SQL)
    def run_sql(sql): ...

Recording (this package's request path) never touches the network; ``flush-spool`` ships the spool to the central table.
"""

from ctg_app.tracking.actions import Actions
from ctg_app.tracking.api import session_events, track_error, track_user_action_simple
from ctg_app.tracking.classify import ByMessage, ByType, ErrorClassifier
from ctg_app.tracking.decorator import tracked
from ctg_app.tracking.errors import ChartError, LlmError, SqlValidationError
from ctg_app.tracking.event import Event
from ctg_app.tracking.guard import health
from ctg_app.tracking.identity import current_session_id, current_user
from ctg_app.tracking.redact import Redactor
from ctg_app.tracking.spool import Spool
from ctg_app.tracking.stats import UsageStats, get_usage_stats
from ctg_app.tracking.tracker import Tracker, get_tracker, reset_tracker, set_tracker

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
