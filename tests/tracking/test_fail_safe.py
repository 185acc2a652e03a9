"""Tracking never breaks the app: whatever happens to the spool, the decorated function returns its own result."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ctg_app.settings import Settings
from ctg_app.tracking import Actions, Spool, Tracker, health, set_tracker, track_error, tracked
from ctg_app.tracking.recording.tracker import DROPPED_COUNTER
from tests.conftest import running_as_root

ROOT = Path(__file__).resolve().parents[2]


@tracked(Actions.EXECUTE_SQL)
def business(value):
    return value * 2


@tracked(Actions.EXECUTE_SQL)
def failing_business():
    raise ZeroDivisionError("the app's own error")


def use(path: Path, **settings) -> Tracker:
    tracker = Tracker(Settings(spool_path=path, **settings))
    set_tracker(tracker)
    return tracker


def test_missing_directory_is_created(tmp_path):
    tracker = use(tmp_path / "a" / "b" / "spool.sqlite3")
    assert business(2) == 4
    assert len(tracker.spool.rows()) == 1


def test_corrupt_spool_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    path = tmp_path / "spool.sqlite3"
    path.write_bytes(b"this is not an SQLite database" * 100)
    tracker = use(path)
    with caplog.at_level(logging.WARNING):
        assert business(21) == 42
    moved = list(tmp_path.glob("spool.sqlite3.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not")
    assert "corrupt" in caplog.text and str(moved[0]) in caplog.text
    assert [row["action"] for row in tracker.spool.rows()] == ["execute_sql"]


def test_spool_corrupted_while_in_use_is_recovered(tmp_path):
    path = tmp_path / "spool.sqlite3"
    tracker = use(path)
    assert business(1) == 2
    tracker.spool.close()
    with open(path, "r+b") as f:  # smash the header and the first pages
        f.write(b"\0garbage" * 512)
    assert business(2) == 4
    assert len(list(tmp_path.glob("spool.sqlite3.corrupt-*"))) == 1
    assert len(tracker.spool.rows()) == 1


def test_unwritable_location_counts_the_lost_event_and_persists_the_count_later(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    use(blocker / "spool.sqlite3")
    assert business(5) == 10
    with pytest.raises(ZeroDivisionError, match="the app's own error"):
        failing_business()
    assert track_error(None, Actions.SQL_ERROR, "x") is False
    assert health.dropped_events == 3
    assert any(key.startswith("record:") for key in health.failures)

    blocker.unlink()  # the disk problem is fixed: the next event lands, and so does the count of lost ones
    tracker = use(blocker / "spool.sqlite3")
    assert business(1) == 2
    assert tracker.spool.counters() == {DROPPED_COUNTER: 3}
    assert health.dropped_events == 0


def test_lock_timeout_does_not_reach_the_caller(tmp_path):
    path = tmp_path / "spool.sqlite3"
    tracker = use(path, spool_busy_timeout_ms=50)
    tracker.spool.connection()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert business(3) == 6
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert health.dropped_events == 1
    assert business(4) == 8
    assert len(tracker.spool.rows()) == 1


def test_spool_written_by_a_newer_version_is_not_touched(tmp_path):
    path = tmp_path / "spool.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    use(path)
    assert business(1) == 2
    assert health.dropped_events == 1
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 999


READ_ONLY_CHILD = """
import os, pwd, sys
from ctg_app.settings import Settings
from ctg_app.tracking import Actions, Tracker, health, set_tracker, tracked
if os.geteuid() == 0:  # root ignores file modes: drop to an unprivileged user once everything is imported
    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
set_tracker(Tracker(Settings(spool_path=sys.argv[1])))
@tracked(Actions.EXECUTE_SQL)
def business(v):
    return v * 2
assert business(21) == 42
print("result ok, dropped", health.dropped_events)
"""


def test_read_only_spool_still_returns_the_value(tmp_path):
    path = tmp_path / "spool.sqlite3"
    Spool(path).connection()
    Spool(path).close()
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    tmp_path.chmod(0o555)
    widened: list[tuple[Path, int]] = []  # (ancestor, its original mode): restored afterwards, whatever happens
    try:
        if running_as_root():  # the unprivileged child must be able to reach the directory
            for parent in tmp_path.parents:
                if parent == Path(tmp_path.anchor):
                    break
                mode = parent.stat().st_mode
                if mode & 0o005 != 0o005:
                    widened.append((parent, mode))
                    parent.chmod(mode | 0o005)
        child = subprocess.run([sys.executable, "-c", READ_ONLY_CHILD, str(path)], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
    finally:
        tmp_path.chmod(0o755)
        for parent, mode in reversed(widened):
            parent.chmod(mode)
    assert child.returncode == 0, child.stderr
    assert "result ok, dropped 1" in child.stdout
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
