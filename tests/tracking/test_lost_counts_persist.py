"""Events lost on the request path stay counted after the process that lost them is gone."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from ctg_app.tracking.delivery.leases import Delivery
from ctg_app.tracking.recording.spool import Spool

WRITER = """
import sys
from ctg_app.settings import Settings
from ctg_app.tracking import Tracker, health, set_tracker
tracker = Tracker(Settings(spool_path=sys.argv[1]))
set_tracker(tracker)  # the process's tracker, as in the app
for _ in range(3):
    tracker.record("app_start")   # the lock is held by the test: each waits 100 ms, then is dropped and counted
print(health.dropped_events, flush=True)
"""


def test_drops_counted_in_memory_survive_the_process(tmp_path):
    path = tmp_path / "spool.sqlite3"
    Spool(path).connection()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        out = subprocess.run([sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) == 3  # dropped, and only in memory when the process exited
    status = Delivery(Spool(path)).status()  # a fresh process-side object: the counts come from disk
    assert status["pending"] == 0
    assert status["dropped"] == 3 and Spool(path).counters().get("dropped_unwritable") == 3
    assert Delivery(Spool(path)).status()["dropped"] == 3  # counted once, not again by the next reader
