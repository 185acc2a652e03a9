"""The size cap on a large spool never holds the write lock so long that tracked calls are dropped (it rebuilt the
indexes with REINDEX under the lock: seconds on a large spool, while a tracked call waits at most 100 ms)."""

from __future__ import annotations

import subprocess
import sys

from ctg_app.tracking.delivery.leases import Delivery
from ctg_app.tracking.recording.spool import _INSERT, Spool

WRITER = """
import os, sys, time
from ctg_app.settings import Settings
from ctg_app.tracking import Tracker, health
tracker = Tracker(Settings(spool_path=sys.argv[1]))  # the default 100 ms request-path bound
recorded = 0
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    if tracker.record("app_start") is not None:
        recorded += 1
    time.sleep(0.002)  # a steady stream of requests
print(recorded, health.dropped_events + tracker.spool.counters().get("dropped_unwritable", 0), flush=True)
"""


def test_the_size_cap_does_not_stall_tracked_calls(tmp_path):
    path, stop = tmp_path / "spool.sqlite3", tmp_path / "stop"
    spool = Spool(path)
    conn = spool.connection()
    rows = [(f"id{i:09d}", f"2026-12-0{1 + i % 5}T10:00:00.{i % 1000:03d}Z", "app", f"user{i % 50}@example.com",
             "execute_sql", "execute_sql", "ok", None, None, 1.5, None, '{"rows": 12}') for i in range(150_000)]
    with spool.transaction() as tx:
        tx.executemany(_INSERT, rows)
    conn.execute("UPDATE events SET state = 'delivered', delivered_at = '2026-12-01T00:00:00.000Z' WHERE seq % 2 = 0")
    delivery = Delivery(spool)
    cap = int(delivery.used_bytes() * 0.75)  # met by purging delivered rows

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(stop)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    try:
        result = delivery.enforce_cap(cap)
    finally:
        stop.touch()
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    recorded, dropped = (int(x) for x in out.split())
    print(f"SUMMARY cap over 150k rows under a writer: purged {result.purged_delivered}, recorded {recorded}, "
          f"dropped {dropped}")
    assert result.purged_delivered > 0
    assert recorded > 0 and dropped == 0
