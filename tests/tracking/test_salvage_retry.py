"""A salvage that fails is retried by a later process: the retry list is on disk, not only in the failing process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from ctg_app.tracking.recording import integrity
from ctg_app.tracking.recording.spool import Spool

WRITER = """
import sys
from ctg_app.settings import Settings
from ctg_app.tracking import Tracker
tracker = Tracker(Settings(spool_path=sys.argv[1], spool_busy_timeout_ms=200))
for i in range(40):
    assert tracker.record("app_start", details={"i": i}) is not None
print("written", flush=True)
sys.stdin.readline()                # the test deletes the file and holds the new one's write lock
tracker.spool.check_identity()      # follows the deletion; the salvage cannot get the lock in 200 ms
print("followed", flush=True)
"""


def test_a_failed_salvage_is_retried_by_another_process(tmp_path):
    path = tmp_path / "spool.sqlite3"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "written"
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"spool.sqlite3{suffix}").unlink(missing_ok=True)
    Spool(path).connection()  # the new, empty spool at the path
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # e.g. a long flush transaction
    try:
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "followed"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert "could not salvage" in err  # the salvage did fail in the writer, which has exited since

    spool = Spool(path)  # a fresh object in another process
    assert spool.rows() == []
    spool.reconcile()
    assert sorted(int(row["details"].split(":")[1].strip(" }")) for row in spool.rows()) == list(range(40))
    assert integrity.listed_for_retry(path) == []  # done: not retried again
    assert list(tmp_path.glob("*.orphan-*")) == []  # the copy made for the retry is gone once salvaged
    spool.reconcile()
    assert len(spool.rows()) == 40  # no duplicates
