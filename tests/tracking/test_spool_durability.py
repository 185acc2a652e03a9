"""The spool under concurrent processes and threads, and after a writer is killed with SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from ctg_app.tracking import Spool

ROOT = Path(__file__).resolve().parents[2]


def start_writer(path: Path, threads: int, count: int, extra: list[str] = (), **env: str) -> subprocess.Popen:
    import os

    return subprocess.Popen(
        [sys.executable, "-m", "tests.tracking.spool_writer", str(path), str(threads), str(count), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env} if env else None,
    )


def test_four_processes_two_threads_each_lose_nothing(tmp_path):
    path = tmp_path / "spool.sqlite3"
    per_thread = 400
    writers = [start_writer(path, threads=2, count=per_thread) for _ in range(4)]
    outputs = [w.communicate(timeout=240) for w in writers]
    for writer, (out, err) in zip(writers, outputs):
        assert writer.returncode == 0, err
        assert out.strip().splitlines()[-1] == "DONE 0", "a lock error or other failure reached the tracker"
        assert "Traceback" not in err
    spool = Spool(path)
    rows = spool.rows()
    assert len(rows) == 4 * 2 * per_thread
    assert len({row["event_id"] for row in rows}) == len(rows)
    assert spool.counts()["pending"] == len(rows)


def test_a_writer_killed_mid_stream_leaves_a_readable_spool_with_every_committed_row(tmp_path):
    path = tmp_path / "spool.sqlite3"
    writer = start_writer(path, threads=2, count=100_000)
    committed = 0
    for line in writer.stdout:  # wait until a good number of events are committed, then kill without warning
        committed = int(line)
        if committed >= 2000:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert stored >= committed  # every event acknowledged to the caller survived
    assert stored < 2 * 100_000  # and the writer really was stopped mid-stream
    conn.close()
    assert len(Spool(path).rows(limit=5)) == 5  # the next user of the file reads it normally
