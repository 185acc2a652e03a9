"""A held spool lock costs a tracked call at most ~100 ms and one counted drop, never a multi-second stall."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from ctg_app.settings import get_settings
from ctg_app.tracking import Actions, get_tracker, tracked
from ctg_app.tracking.recording.guard import health
from ctg_app.tracking.recording import spool as spool_module
from ctg_app.tracking.recording import tracker as tracker_module
from ctg_app.tracking.recording.spool import REQUEST_TAIL_POLL_MS, Spool, request_busy_ms
from ctg_app.tracking.recording.tracker import set_tracker

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


class SteppingClock:
    """A monotonic clock that moves ``step`` seconds on every reading (the recorder's wait, counted not timed)."""

    def __init__(self, step: float) -> None:
        self.step, self.now, self.readings = step, 0.0, 0

    def monotonic(self) -> float:
        self.readings += 1
        self.now += self.step
        return self.now


def _busy_timeout_ms(spool: Spool) -> int:
    return spool.connection().execute("PRAGMA busy_timeout").fetchone()[0]


def test_a_held_lock_is_a_counted_drop_not_a_stall(tracking_spool, monkeypatch):
    assert start() == "ok"  # the spool exists (and any drop counted by an earlier test is persisted)
    persisted = tracking_spool.counters().get("dropped_unwritable", 0)
    bound_ms = get_settings().request_lock_wait_ms
    handler_ms = request_busy_ms(bound_ms)  # SQLite's busy handler waits this long inside the INSERT
    step = 1 / 64  # exact in binary: the clock readings carry no rounding
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tracking_spool.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        dropped = health.dropped_events
        spool = get_tracker().spool
        attempts = []
        append = spool.append
        monkeypatch.setattr(spool, "append", lambda event: (attempts.append(1), append(event))[1])
        clock = SteppingClock(step)
        tail = []  # (the clock when the fine attempts began, their deadline, the clock when they gave up)
        append_until = spool.append_until

        def fine_attempts(event, deadline):
            began = clock.now
            try:
                append_until(event, deadline)
            finally:
                tail.append((began, deadline, clock.now))

        monkeypatch.setattr(spool, "append_until", fine_attempts)
        virtual_time = SimpleNamespace(monotonic=clock.monotonic)
        monkeypatch.setattr(tracker_module, "time", virtual_time)
        monkeypatch.setattr(spool_module, "time", virtual_time)
        assert start() == "ok"  # the app goes on
        assert health.dropped_events == dropped + 1  # counted
        # The first attempt waits in SQLite's busy handler for the first half of TRACKING_REQUEST_LOCK_WAIT_MS (5000 ms
        # before: a 5 s stall); fine attempts use the rest, and the recorder gives up on the first reading of its clock
        # past the bound.
        assert _busy_timeout_ms(spool) == handler_ms == bound_ms // 2
        (began, deadline, gave_up), = tail
        assert deadline - began == pytest.approx((bound_ms - handler_ms) / 1000)
        assert len(attempts) > 2, attempts  # the handler's attempt, then fine attempts while the bound lasted
        assert deadline <= gave_up < deadline + 3 * step, (gave_up, deadline, len(attempts))
        monkeypatch.undo()
        # A fresh tracker opens its connection while the lock is held: opening takes no write lock (a spool whose
        # every wait is 2 ms opens), and it records a counted drop the same way.
        quick = Spool(tracking_spool.path, busy_timeout_ms=REQUEST_TAIL_POLL_MS,
                      setup_busy_timeout_ms=REQUEST_TAIL_POLL_MS)
        assert quick.setup_busy_timeout_ms == REQUEST_TAIL_POLL_MS and _busy_timeout_ms(quick) == REQUEST_TAIL_POLL_MS
        quick.close()
        set_tracker(None)
        assert start() == "ok"
        assert health.dropped_events == dropped + 2
        assert _busy_timeout_ms(get_tracker().spool) == handler_ms
    finally:
        holder.communicate("\n", timeout=30)
    assert start() == "ok"  # the lock is gone: recorded again, and the drops are persisted in the spool
    assert len(tracking_spool.rows()) == 2
    assert tracking_spool.counters().get("dropped_unwritable") == persisted + 2


def test_only_the_request_path_waits_briefly(tracking_spool):
    settings = get_settings()
    assert settings.request_lock_wait_ms == 100
    assert get_tracker().spool.busy_timeout_ms == request_busy_ms(100) == 50  # SQLite's handler: the first half
    assert Spool.from_settings(settings).busy_timeout_ms == settings.spool_busy_timeout_ms == 5000  # flush, CLIs
    assert Spool.from_settings(settings.replace(spool_busy_timeout_ms=1), request_path=True).busy_timeout_ms == 1


def test_under_heavy_contention_every_event_is_stored_or_counted(tmp_path):
    """Four processes, two threads each, with the default 100 ms bound: a writer starved past the bound drops its event
    and counts it; nothing vanishes uncounted."""
    from tests.tracking.test_spool_durability import start_writer

    path = tmp_path / "spool.sqlite3"
    per_thread = 400
    writers = [start_writer(path, threads=2, count=per_thread, extra=["bounded"]) for _ in range(4)]
    outputs = [w.communicate(timeout=240) for w in writers]
    in_memory = 0
    for writer, (out, err) in zip(writers, outputs):
        assert writer.returncode == 0, err
        in_memory += int(out.strip().splitlines()[-2].split()[1])
    spool = Spool(path)
    stored = len(spool.rows())
    counted = spool.counters().get("dropped_unwritable", 0) + in_memory
    assert stored + counted == 4 * 2 * per_thread, (stored, counted)
    print(f"stored {stored}, dropped and counted {counted}")


def test_concurrent_threads_return_only_once_their_event_is_committed(tmp_path):
    """Eight threads of one process record at once; each event a call returned is already visible to another
    connection (committed) at that moment, and none is lost."""
    import sqlite3
    import threading

    from ctg_app.settings import Settings
    from ctg_app.tracking import Tracker

    path = tmp_path / "spool.sqlite3"
    tracker = Tracker(Settings(spool_path=path, request_lock_wait_ms=30_000))
    tracker.record("app_start")
    missing: list[str] = []
    go = threading.Barrier(8)

    def run() -> None:
        reader = sqlite3.connect(path, timeout=30)
        go.wait()
        for _ in range(150):
            event = tracker.record("execute_sql")
            if reader.execute("SELECT 1 FROM events WHERE event_id = ?", (event.event_id,)).fetchone() is None:
                missing.append(event.event_id)
        reader.close()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert missing == []
    assert len(Spool(path).rows()) == 1 + 8 * 150
