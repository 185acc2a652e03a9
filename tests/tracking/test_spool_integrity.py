"""The spool's integrity protocol across real processes: corruption found by two writers at once, a spool deleted
under a running writer, and drops counted by a process that exits while the spool is unwritable."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from ctg_app.tracking import Spool
from ctg_app.tracking.delivery.leases import Delivery

ROOT = Path(__file__).resolve().parents[2]


def start(path: Path, tag: str, before: int, after: int, go: Path, **env: str) -> subprocess.Popen:
    import os

    return subprocess.Popen(
        [sys.executable, "-m", "tests.tracking.phased_writer", str(path), tag, str(before), str(after), str(go)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
    )


def wait_paused(writer: subprocess.Popen) -> None:
    line = writer.stdout.readline()
    assert line.strip() == "PAUSED", (line, writer.stderr.read() if writer.poll() is not None else "")


def finish(writer: subprocess.Popen) -> tuple[int, int]:
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    failures, dropped = out.split()[-2:]
    return int(failures), int(dropped)


def smash_page(path: Path, name: str, which: str = "root") -> None:
    """Overwrite one page of table/index ``name`` with garbage (its root page, or a leaf in the middle)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    if which == "root":
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    else:
        leaves = [r[0] for r in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (name,))]
        page = leaves[len(leaves) // 2]
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek((page - 1) * page_size + 8)  # keep the page-type byte area plausible, smash the cells
        fh.write(b"\xa5\x5a" * ((page_size - 16) // 2))


def event_keys(path: Path) -> set[tuple[str, str]]:
    """(tag, i) of every readable event in a spool file."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT details FROM events").fetchall()
    except sqlite3.DatabaseError:
        return set()
    finally:
        conn.close()
    return {(d["tag"], d["i"]) for d in (json.loads(r[0]) for r in rows) if "tag" in d}


def test_two_writers_finding_corruption_strand_nothing(tmp_path):
    """Both writers hit the damaged index at once: exactly one file is quarantined, nobody writes into a moved file,
    and every event either process committed is in the live spool (salvaged or written after)."""
    path, go = tmp_path / "spool.sqlite3", tmp_path / "go"
    writers = [start(path, tag, 300, 700, go) for tag in ("a", "b")]
    for writer in writers:
        wait_paused(writer)
    smash_page(path, "idx_events_report")  # every append inserts into this index: both writers notice
    go.touch()
    results = [finish(writer) for writer in writers]
    expected = {(tag, i) for tag in ("a", "b") for i in range(1000)}
    dropped = sum(d for _, d in results)
    live = event_keys(path)
    moved = [p for p in tmp_path.glob("spool.sqlite3.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    stranded = set().union(*(event_keys(p) for p in moved)) - live if moved else set()
    print(f"SUMMARY two-writer corruption: live {len(live & expected)}/2000, stranded {len(stranded)}, "
          f"dropped {dropped}, quarantined files {len(moved)}")
    assert stranded == set()
    assert expected <= live, f"{len(expected - live)} events missing from the live spool"
    assert len(moved) == 1
    status = Delivery(Spool(path)).status()
    assert status["pending"] == 2000 and status["dropped"] == 0
    assert [f["event"] for f in status["spool_files"]] == ["quarantined"]


def test_spool_deleted_under_a_running_writer_is_noticed_and_nothing_is_lost(tmp_path):
    path, go = tmp_path / "spool.sqlite3", tmp_path / "go"
    writer = start(path, "w", 1000, 1000, go)
    wait_paused(writer)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    go.touch()
    failures, dropped = finish(writer)
    live = event_keys(path) if path.exists() else set()
    print(f"SUMMARY deleted spool: live {len(live)}/2000, dropped {dropped}")
    assert live == {("w", i) for i in range(2000)}
    status = Delivery(Spool(path)).status()
    assert [f["event"] for f in status["spool_files"]] == ["deleted"]
    assert status["spool_files"][0]["salvaged"] >= 1000  # and any written before the writer noticed
    assert failures == 0


def test_drops_counted_in_a_process_that_exits_survive(tmp_path):
    """The spool is locked by someone else for the writer's whole life: every event is dropped, and the count
    reaches ``flush-spool --status`` after the writer exited."""
    path, go = tmp_path / "spool.sqlite3", tmp_path / "go"
    Spool(path).counts()  # create it
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    go.touch()
    writer = start(path, "w", 0, 50, go, WRITER_BUSY_MS="20")
    _, dropped_in_process = finish(writer)
    holder.execute("ROLLBACK")
    holder.close()
    status = Delivery(Spool(path)).status()
    print(f"SUMMARY drops after exit: counted in process {dropped_in_process}, in --status {status['dropped']}")
    assert dropped_in_process == 50
    assert status["dropped_unwritable"] == 50 and status["pending"] == 0
    assert Delivery(Spool(path)).status()["dropped_unwritable"] == 50  # taken in once, not on every look
