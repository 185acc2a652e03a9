"""The one fail-safe guard: tracking never breaks the app, and never loses an event without counting it.

Every tracking step that runs inside the app goes through :func:`fail_safe` (or, on the decorator's hottest path, ends
in :func:`absorb` directly, which is what ``fail_safe`` calls). A failure inside it (unwritable directory, disk
full, corrupt file, lock timeout, absurd input, a bug of ours) is logged once per kind with a count, counted in
:data:`health`, and swallowed; the caller gets the fallback value. This is the only place tracking catches broad exceptions
on the app's behalf.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("ctg_app.tracking")

F = TypeVar("F", bound=Callable[..., Any])


class TrackingHealth:
    """In-process counters of what tracking could not do (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: Counter[str] = Counter()  # by step and exception type
        self.dropped_events = 0  # events that could not be written anywhere

    def count_failure(self, step: str, exc: BaseException, events_lost: int) -> int:
        """Count one failure of ``step``; returns how often this step/type has failed so far."""
        key = f"{step}:{type(exc).__name__}"
        with self._lock:
            self.failures[key] += 1
            self.dropped_events += events_lost
            return self.failures[key]

    def take_dropped(self) -> int:
        """Hand over (and zero) the dropped-events count, so it can be persisted once the spool works again."""
        with self._lock:
            dropped, self.dropped_events = self.dropped_events, 0
            return dropped

    def give_back(self, dropped: int) -> None:
        """Return a count taken by :meth:`take_dropped` that could not be persisted (it is tried again later)."""
        with self._lock:
            self.dropped_events += dropped

    def snapshot(self) -> dict[str, Any]:
        """A copy of the counters for display."""
        with self._lock:
            return {"failures": dict(self.failures), "dropped_events": self.dropped_events}


health = TrackingHealth()


def _should_log(count: int) -> bool:
    # 1st, 2nd, 4th, 8th ... failure of a kind: visible without flooding the log when the disk stays full.
    return count & (count - 1) == 0


def _safe_text(exc: BaseException) -> str:
    """The exception's message with secrets removed (never the raw text: it may quote a connection string)."""
    try:
        from ctg_app.settings import get_settings
        from ctg_app.redact import Redactor

        return Redactor(get_settings().secret_values(), max_length=300)(exc)
    except Exception:  # noqa: BLE001 - even the settings may be what is broken
        return "<message withheld>"


def absorb(step: str, exc: Exception, events: int = 1) -> None:
    """Count and log a failure of tracking step ``step`` that lost ``events`` events. The one place failures end."""
    count = health.count_failure(step, exc, events)
    if _should_log(count):
        log.warning("tracking step %r failed (%s: %s; %d so far); the app continues",
                    step, type(exc).__name__, _safe_text(exc), count)


def fail_safe(step: str, *, fallback: Any = None, events: int = 1) -> Callable[[F], F]:
    """Decorate a tracking step so no ``Exception`` escapes it (failures go to :func:`absorb`).

    ``events`` is how many events are lost when the step fails (1 for recording, 0 for a read such as a status query).
    Only ``Exception`` is caught: ``KeyboardInterrupt`` and ``SystemExit`` still stop the program.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - this is the guard
                absorb(step, exc, events)
                return fallback

        return guarded  # type: ignore[return-value]

    return decorate
