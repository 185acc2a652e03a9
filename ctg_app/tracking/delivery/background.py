"""The optional in-app background flusher (``BACKGROUND_FLUSH=true``): one daemon thread per process.

The app calls :func:`start_background_flusher` once at start-up (repeated calls, e.g. on every Streamlit rerun, return
the running flusher). The thread runs :meth:`Flusher.run` every ``BACKGROUND_FLUSH_INTERVAL_S`` seconds, backs off
exponentially (with jitter, up to 10 minutes) while the warehouse is down, and stops at interpreter exit (``atexit``).
It shares the spool's lease protocol with the ``flush-spool`` command, so both may run at once without duplicates.
It never runs on the request path, and no failure inside it reaches the app.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from ctg_app.settings import Settings, get_settings
from ctg_app.warehouse.connection import describe_error
from ctg_app.tracking.delivery.backoff import Backoff
from ctg_app.tracking.delivery.flush import OK, Flusher, FlushReport, new_owner

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0

_lock = threading.Lock()
_current: BackgroundFlusher | None = None
_atexit_registered = False


class BackgroundFlusher:
    """A daemon thread that flushes the spool periodically until :meth:`stop`."""

    def __init__(self, settings: Settings, *, interval_s: float | None = None) -> None:
        self.settings = settings
        self.interval_s = max(0.05, float(interval_s if interval_s is not None else settings.background_flush_interval_s))
        self.flusher = Flusher(settings, owner=new_owner("background"))
        self.pid = os.getpid()
        self.failures = 0
        self.runs = 0
        self.last_report: FlushReport | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ctg-background-flusher", daemon=True)

    @property
    def alive(self) -> bool:
        """True while the thread runs in this process."""
        return self.pid == os.getpid() and self._thread.is_alive()

    def start(self) -> BackgroundFlusher:
        """Start the thread (returns self)."""
        self._thread.start()
        log.info("background flusher started (every %.1f s)", self.interval_s)
        return self

    def next_delay(self) -> float:
        """Seconds until the next run: the interval, doubled per consecutive failure up to 10 minutes, with jitter."""
        if not self.failures:
            return self.interval_s
        return Backoff(base=self.interval_s, cap=MAX_BACKOFF_S).delay(self.failures)

    def _loop(self) -> None:
        delay = min(self.interval_s, 1.0)  # first run soon after start-up
        while not self._stop.wait(delay):
            try:
                report = self.flusher.run(stop=self._stop)
                self.last_report = report
                self.failures = 0 if report.outcome == OK else self.failures + 1
            except Exception as exc:  # noqa: BLE001 - the app must never see the flusher fail
                self.failures += 1
                # describe_error, not the traceback: a connection error's text may quote the connection settings.
                log.warning("background flush failed: %s", describe_error(exc, self.settings))
            self.runs += 1
            delay = self.next_delay()
        log.info("background flusher stopped")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop after its current batch and wait up to ``timeout`` seconds."""
        self._stop.set()
        if self.alive and threading.current_thread() is not self._thread:
            self._thread.join(timeout)


def start_background_flusher(settings: Settings | None = None, *, interval_s: float | None = None,
                             force: bool = False) -> BackgroundFlusher | None:
    """Start this process's background flusher if ``BACKGROUND_FLUSH`` is on (or ``force``) and the warehouse is
    configured; returns it (the running one when already started), or None when it is off."""
    global _current, _atexit_registered
    settings = settings or get_settings()
    if not (settings.background_flush or force):
        return None
    if not settings.warehouse_configured:
        log.warning("BACKGROUND_FLUSH is on but the Databricks warehouse is not configured; not starting")
        return None
    with _lock:
        if _current is not None and _current.alive:
            return _current
        _current = BackgroundFlusher(settings, interval_s=interval_s).start()
        if not _atexit_registered:
            atexit.register(stop_background_flusher)
            _atexit_registered = True
        return _current


def stop_background_flusher(timeout: float = 10.0) -> None:
    """Stop this process's background flusher, if any (also run at interpreter exit)."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.stop(timeout)
