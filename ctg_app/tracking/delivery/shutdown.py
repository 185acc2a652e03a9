"""Drain on shutdown: on SIGTERM or a normal exit, flush what the warehouse takes within a bounded deadline, then
park the rest on the volume (``park.py``), so an app restart or redeploy on an ephemeral disk loses nothing.

Databricks Apps sends SIGTERM and kills the app 15 s later. :func:`drain` finishes within ``TRACKING_DRAIN_TIMEOUT_S``
(default 10 s): it stops the background flusher, runs one flush (backoff ignored) in a daemon thread for all but the
last part of the budget, then parks every event still pending - including ones the flush still has in flight, whose
outcome is unknown (a copy in the warehouse and one in a segment still make one row). The network calls may hang: each
phase runs in a daemon thread that is abandoned at its deadline, so the process always exits on time.

:func:`install` registers the drain to run once at interpreter exit (Streamlit turns SIGTERM into a normal exit).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctg_app.settings import Settings, get_settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_installed = False
_drained = False
_signalled_at: float | None = None  # time.monotonic() of the shutdown signal, when the launcher saw it


def mark_signal() -> None:
    """Remember when the shutdown signal arrived: the drain's deadline counts from then, not from when the web
    server has finished stopping (called from the launcher's signal handler; the first signal counts)."""
    global _signalled_at
    if _signalled_at is None:
        _signalled_at = time.monotonic()


@dataclass
class DrainReport:
    """What the drain did: events delivered and parked, events left pending in the spool, and its duration."""

    delivered: int = 0
    parked: int = 0
    left_pending: int = 0
    seconds: float = 0.0
    timed_out: bool = False
    error: str | None = None


def park_reserve_s(timeout_s: float, parking: bool) -> float:
    """Seconds of the budget kept for parking (a third, at most 3 s); a small margin without a volume."""
    return min(3.0, timeout_s / 3) if parking else min(0.5, timeout_s / 10)


def _in_thread(target: Callable[[], Any], timeout_s: float, name: str) -> tuple[bool, Any]:
    """Run ``target`` in a daemon thread for at most ``timeout_s``: (finished, its result or exception)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(max(0.0, timeout_s))
    if thread.is_alive():
        return False, None
    return True, box.get("error", box.get("result"))


def drain(settings: Settings | None = None, *, timeout_s: float | None = None) -> DrainReport:
    """Flush, then park, within ``timeout_s`` (default ``TRACKING_DRAIN_TIMEOUT_S``). Never raises."""
    from ctg_app.tracking.delivery.background import stop_background_flusher
    from ctg_app.tracking.delivery.flush import Flusher, FlushReport, new_owner
    from ctg_app.tracking.recording.spool import STATE_PENDING, Spool

    started = time.monotonic()
    report = DrainReport()
    try:
        settings = settings or get_settings()
        budget = max(0.5, float(timeout_s if timeout_s is not None else settings.drain_timeout_s))
        # from the signal when known (the web server's own shutdown came first), but never less than a second
        deadline = max(started + 1.0, (_signalled_at or started) + budget)
        budget = deadline - started
        parking = bool(settings.park_volume)
        flush_until = deadline - park_reserve_s(budget, parking)
        stop_background_flusher(timeout=min(1.0, budget / 10))  # asks it to stop; a hung call is left behind
        spool = Spool.from_settings(settings)
        parker = None
        if parking:
            from ctg_app.tracking.delivery.park import Parker

            parker = Parker(settings, spool, timeout_s=max(1.0, park_reserve_s(budget, True) - 0.3))
            # build the Files API client (SDK import, config) while the flush runs, not in the park's short budget
            client_ready = threading.Thread(target=lambda: parker.files, name="ctg-drain-files-client", daemon=True)
            client_ready.start()
        if settings.warehouse_configured:
            stop = threading.Event()
            flusher = Flusher(settings, spool=spool, owner=new_owner("drain"))
            done, result = _in_thread(
                lambda: flusher.run(ignore_backoff=True, stop=stop, housekeeping=False),
                flush_until - time.monotonic(), "ctg-drain-flush")
            stop.set()
            if isinstance(result, FlushReport):
                report.delivered = result.delivered
                report.error = result.error
            elif isinstance(result, BaseException):
                report.error = f"{type(result).__name__}"
            report.timed_out = not done
        if parker is not None and spool.counts()[STATE_PENDING]:
            remaining = deadline - time.monotonic()
            done, result = _in_thread(lambda: parker.park_pending(force=True, deadline=deadline - 0.2),
                                      remaining - 0.1, "ctg-drain-park")
            if done and not isinstance(result, BaseException):
                report.parked = result.parked
                report.error = result.error or report.error
            elif done:
                report.error = f"{type(result).__name__}"
            report.timed_out = report.timed_out or not done
        report.left_pending = spool.counts()[STATE_PENDING]
    except Exception as exc:  # noqa: BLE001 - shutting down must never fail because of tracking
        report.error = f"{type(exc).__name__}"
        log.warning("drain on shutdown failed: %s", report.error)
    report.seconds = round(time.monotonic() - started, 3)
    level = logging.WARNING if report.left_pending else logging.INFO
    log.log(level, "drain on shutdown: %d events delivered, %d parked, %d left pending in the local spool%s "
            "(%.1f s%s%s)", report.delivered, report.parked, report.left_pending,
            " - lost if this disk does not survive the restart (set TRACKING_PARK_VOLUME)"
            if report.left_pending else "", report.seconds, ", deadline reached" if report.timed_out else "",
            f"; {report.error}" if report.error else "")
    return report


def drain_once() -> DrainReport | None:
    """:func:`drain`, only the first time it is called in this process (the exit hook and the launcher both call it)."""
    global _drained
    with _lock:
        if _drained:
            return None
        _drained = True
    settings = get_settings()
    if not (settings.background_flush or settings.park_volume):
        return None  # this process does not ship events (flush-spool does): nothing to drain
    return drain(settings)


def install(settings: Settings | None = None) -> bool:
    """Register :func:`drain_once` at interpreter exit when this process ships events (``BACKGROUND_FLUSH``) or
    parks them (``TRACKING_PARK_VOLUME``). Idempotent; returns whether the drain is registered."""
    global _installed
    settings = settings or get_settings()
    if not (settings.background_flush or settings.park_volume):
        return False
    with _lock:
        if not _installed:
            atexit.register(drain_once)
            _installed = True
    return True
