"""Light mid-file corruption of the spool does not stop delivery: ``flush-spool`` quarantines the file, delivers every
readable event through the real connector, and ``--status`` keeps working and shows what could not be read."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import redirect_stdout

from ctg_app.tracking.delivery.cli import main
from tests.flush.conftest import fill, make_events, warehouse_ids
from tests.tracking.test_spool_integrity import smash_page


def run(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue() or "{}")


def test_light_corruption_mid_file_still_delivers_every_readable_event(flush_env, spool, spool_path):
    events = make_events(4000)
    fill(spool, events)
    spool.close()
    smash_page(spool_path, "events", which="leaf")

    code, before = run("--status")  # status may be the first to notice: then it quarantines and salvages
    assert code == 0 and before["pending"] + before["dropped_corrupt"] == 4000
    code, report = run()
    ids = warehouse_ids(flush_env)
    code_after, status = run("--status")
    files = status["spool_files"]
    print(f"SUMMARY light corruption: flush exit {code}, delivered {len(ids)}/4000, "
          f"unreadable {sum(f['unreadable_undelivered'] for f in files)}, status exit {code_after}")
    assert code == 0, report
    assert len(ids) == len(set(ids)) and set(ids) <= {e[0] for e in events}
    assert [f["event"] for f in files] == ["quarantined"]
    unreadable = files[0]["unreadable_undelivered"]
    assert 0 < unreadable < 100  # one page of rows
    assert len(ids) + unreadable == 4000  # every event delivered or counted
    assert status["dropped_corrupt"] == unreadable and status["pending"] == 0
    assert code_after == 0
    quarantined = sqlite3.connect(files[0]["path"])  # the damaged file is kept for inspection
    quarantined.close()
