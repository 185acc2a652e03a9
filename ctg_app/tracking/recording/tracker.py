"""The recorder: builds one :class:`Event` and appends it to the spool, inside the fail-safe guard.

The request path never touches the network: shipping to Databricks is the flush's job. A process has one current
:class:`Tracker` (``get_tracker()``); ``reset_tracker()`` drops it so the next use reads the settings again.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any

from ctg_app.settings import Settings, get_settings, reload_settings
from ctg_app.tracking.recording.classify import ErrorClassifier
from ctg_app.tracking.recording.event import STATUS_ERROR, STATUS_OK, Event, new_id_and_timestamp
from ctg_app.tracking.recording.guard import fail_safe, health
from ctg_app.tracking.recording import identity
from ctg_app.tracking.recording.identity import MAX_USER_LENGTH, current_user, normalise_user
from ctg_app.redact import Redactor
from ctg_app.tracking.recording.spool import DROPPED_COUNTER, Spool, record_drops_outside

log = logging.getLogger("ctg_app.tracking")

# Event(...) goes through a generated Python __new__; tuple.__new__ builds the same value in a third of the time.
_make_event = tuple.__new__

# Bounds applied at record time (README "What is recorded"), so one hostile value costs O(bound) and can neither
# bloat the spool nor make the warehouse refuse its batch.
MAX_NAME = 64  # action, operation, error_type
MAX_ERROR_MESSAGE = 500  # the redacted exception message
MAX_DETAIL_VALUE = 200  # characters kept of each captured value
MAX_DETAIL_KEYS = 50  # captured values per event
MAX_DETAILS = 2000  # characters of the whole details JSON


class Tracker:
    """Records events for one app into one spool, with one classifier and one redactor."""

    def __init__(
        self,
        settings: Settings,
        *,
        spool: Spool | None = None,
        classifier: ErrorClassifier | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool or Spool.from_settings(settings, request_path=True)
        self.classifier = classifier or ErrorClassifier()
        self.redact = redactor or Redactor(settings.secret_values())
        self.enabled = settings.tracking_enabled
        self.debug = settings.debug_logging
        self.app_name = settings.app_name
        self.default_user = normalise_user(settings.default_user, settings.default_user)

    @fail_safe("record")
    def record(self, action: str, **fields: Any) -> Event | None:
        """Build an event and make it durable in the spool. Returns it, or None when tracking is off or failed.

        Keyword fields: ``operation``, ``status``, ``error_type``, ``error_message`` (redacted and bounded here),
        ``duration_ms``, ``details`` (a mapping; values bounded and redacted), ``user`` (default: ``current_user()``).
        """
        return self.record_unguarded(action, **fields)

    def record_unguarded(
        self,
        action: str,
        operation: str | None = None,
        status: str = STATUS_OK,
        error_type: str | None = None,
        error_message: object = None,
        duration_ms: float | None = None,
        details: Mapping[str, Any] | None = None,
        user: str | None = None,
    ) -> Event | None:
        """:meth:`record` without the fail-safe guard, for callers that run inside the guard already.

        This is the request path: every line here is paid on every tracked call, so it stays flat on purpose.
        """
        if not self.enabled:
            return None
        # Cheap checks for the common case (short printable constants); anything else is cleaned and bounded.
        if type(action) is not str or len(action) > MAX_NAME or not action.isprintable():
            action = self._name(action)
        if operation is not None and (type(operation) is not str or len(operation) > MAX_NAME
                                      or not operation.isprintable()):
            operation = self._name(operation)
        if error_type is not None and (type(error_type) is not str or len(error_type) > MAX_NAME
                                       or not error_type.isprintable()):
            error_type = self._name(error_type)
        event_id, timestamp = new_id_and_timestamp()
        ctx = identity.script_run_ctx()
        if ctx is None:
            session_id = None
            if user is None:
                user = self.default_user
        else:
            session_id = ctx.session_id
            if user is None:
                user = current_user(self.settings)
        if user is not self.default_user and (type(user) is not str or len(user) > MAX_USER_LENGTH
                                              or not user.isprintable()):
            user = self._name(user, MAX_USER_LENGTH)
        event = _make_event(
            Event,
            (
            event_id,
            timestamp,
            self.app_name,
            user,
            action,
            operation,
            status,
            error_type,
            None if error_message is None else self.redact(error_message, MAX_ERROR_MESSAGE),
            duration_ms,
            session_id,
            self._details_json(details) if details else "{}",
            ),
        )
        # Committed before this returns. A held lock: SQLite's busy handler waits the first half of
        # TRACKING_REQUEST_LOCK_WAIT_MS inside this INSERT, fine attempts the rest; past it the guard counts a drop.
        try:
            self.spool.append(event)
        except sqlite3.OperationalError as exc:  # only when the spool was locked: not on the common path
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # SQLITE_BUSY and its extended codes
                raise
            left_ms = self.settings.request_lock_wait_ms - self.spool.busy_timeout_ms  # the handler waited that long
            self.spool.append_until(event, time.monotonic() + max(0, left_ms) / 1000)
        if health.dropped_events:
            self._persist_dropped()
        if self.debug:
            log.debug("tracked %s", event._asdict())
        return event

    def _name(self, value: object, limit: int = MAX_NAME) -> str:
        """A short text field (action, operation, error type, user) made safe: redacted, escaped, bounded."""
        return self.redact(value, limit) or "?"

    def _details_json(self, details: Mapping[str, Any]) -> str:
        safe = {self._name(key): _bounded(value, self.redact)
                for key, value in itertools.islice(details.items(), MAX_DETAIL_KEYS)}
        text = json.dumps(safe, ensure_ascii=False, default=str)
        if len(text) > MAX_DETAILS:
            text = json.dumps({"truncated": True, "keys": sorted(safe)[:20]})
        return text

    def _persist_dropped(self) -> None:
        dropped = health.take_dropped()
        try:
            self.spool.check_identity()  # a rare path: count into the file now at the path, not one moved aside
            self.spool.add_to_counter(DROPPED_COUNTER, dropped)
        except Exception:  # noqa: BLE001 - e.g. the lock is taken: this call's own event is committed already
            health.give_back(dropped)  # try again next time
            log.debug("could not persist %d dropped events yet", dropped, exc_info=True)
            return
        log.warning("%d tracking events were lost while the spool was unavailable (counted in the spool)", dropped)

    def record_error(self, exc: BaseException, *, operation: str | None, duration_ms: float | None = None,
                     details: Mapping[str, Any] | None = None) -> Event | None:
        """Record the classified error action for ``exc`` raised inside ``operation`` (unguarded, like the above)."""
        return self.record_unguarded(
            self.classify(exc, operation),
            operation=operation,
            status=STATUS_ERROR,
            error_type=type(exc).__qualname__,
            error_message=exc,
            duration_ms=duration_ms,
            details=details,
        )

    @fail_safe("classify", fallback="app_error", events=0)
    def classify(self, exc: BaseException, operation: str | None) -> str:
        """The error action for ``exc`` (never raises: a broken custom rule yields ``app_error``)."""
        return self.classifier.classify(exc, operation)

    def normalise_user(self, user_email: object) -> str:
        """A caller-supplied email in the stored form (the default when empty)."""
        return normalise_user(user_email, self.settings.default_user)


def _bounded(value: Any, redact: Redactor) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(value, MAX_DETAIL_VALUE)


_tracker: Tracker | None = None
_tracker_lock = threading.Lock()


def get_tracker() -> Tracker:
    """The process's tracker, created from the settings on first use."""
    tracker = _tracker
    if tracker is None:
        tracker = _create_tracker()
    return tracker


@fail_safe("configure", fallback=None, events=0)
def _build_from_settings() -> Tracker | None:
    return Tracker(get_settings())


def _create_tracker() -> Tracker:
    global _tracker
    with _tracker_lock:
        if _tracker is None:
            tracker = _build_from_settings()
            if tracker is None:  # settings unusable (logged by the guard): record with the defaults instead
                tracker = Tracker(Settings())
            _tracker = tracker
        return _tracker


def set_tracker(tracker: Tracker | None) -> None:
    """Make ``tracker`` the process's tracker (``None``: build one from the settings on next use)."""
    global _tracker
    with _tracker_lock:
        _tracker = tracker


def _persist_drops_at_exit() -> None:
    """At interpreter exit: salvage what went into a spool file moved or deleted since the last identity check, and
    write drops still only counted in memory to ``<spool>.drops`` (the spool itself may be what was unwritable; the
    next flush or ``--status`` adds them to the spool's ``dropped_unwritable``)."""
    tracker = _tracker
    if tracker is not None:
        try:  # the last events may have gone into a spool file deleted or moved since the last identity check
            tracker.spool.check_identity()
            tracker.spool.salvage_retired()  # ... or from a thread that has ended since (its connection is retired)
        except Exception:  # noqa: BLE001 - best effort at exit
            log.debug("spool identity check at exit failed", exc_info=True)
    dropped = health.take_dropped()
    if not dropped:
        return
    path = tracker.spool.path if tracker is not None else None
    if path is None or not record_drops_outside(path, dropped):
        log.error("%d tracking events were lost and could not be counted persistently", dropped)


atexit.register(_persist_drops_at_exit)


def reset_tracker() -> None:
    """Re-read the settings and start a fresh tracker on next use (tests and the CLI call this)."""
    reload_settings()
    set_tracker(None)
