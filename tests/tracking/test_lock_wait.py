"""A held spool lock costs a tracked call at most ~100 ms and one counted drop, never a multi-second stall."""

from __future__ import annotations

import subprocess
import sys
import time

from ctg_app.settings import get_settings
from ctg_app.tracking import Actions, get_tracker, tracked
from ctg_app.tracking.recording.guard import health
from ctg_app.tracking.recording.spool import REQUEST_LOCK_WAIT_MS, Spool

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # the write lock, as a long flush transaction or a stuck process would hold it
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@tracked(Actions.APP_START)
def start():
    return "ok"


def test_a_held_lock_is_a_counted_drop_not_a_stall(tracking_spool):
    assert start() == "ok"  # the spool exists (and any drop counted by an earlier test is persisted)
    persisted = tracking_spool.counters().get("dropped_unwritable", 0)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tracking_spool.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        dropped = health.dropped_events
        started = time.perf_counter()
        assert start() == "ok"  # the app goes on
        elapsed = time.perf_counter() - started
        assert health.dropped_events == dropped + 1  # counted
    finally:
        holder.communicate("\n", timeout=30)
    assert elapsed < 0.5, elapsed  # 5.0 s before (TRACKING_SPOOL_BUSY_TIMEOUT_MS on the request path)
    assert start() == "ok"  # the lock is gone: recorded again, and the drop is persisted in the spool
    assert len(tracking_spool.rows()) == 2
    assert tracking_spool.counters().get("dropped_unwritable") == persisted + 1


def test_only_the_request_path_waits_briefly(tracking_spool):
    settings = get_settings()
    assert get_tracker().spool.busy_timeout_ms == REQUEST_LOCK_WAIT_MS == 100
    assert Spool.from_settings(settings).busy_timeout_ms == settings.spool_busy_timeout_ms == 5000  # flush, CLIs
    assert Spool.from_settings(settings.replace(spool_busy_timeout_ms=20), request_path=True).busy_timeout_ms == 20
