"""A pre-existing four-column table (legacy mode) and ``flush-spool --migrate``: no duplicates across the migration,
and distinct events that share (timestamp, app_name, user, action) are never collapsed into one row."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

from ctg_app.tracking.delivery.cli import main
from ctg_app.tracking.delivery.flush import Flusher
from tests.flush.conftest import TABLE, fill, make_events

LEGACY_DDL = f"CREATE TABLE {TABLE} (`timestamp` TIMESTAMP, app_name STRING, `user` STRING, action STRING)"


def flush_cli(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue())


def rows_in_table(wh) -> int:
    return wh.query(f"SELECT COUNT(*) FROM {TABLE}")[0][0]


def test_migrate_after_a_committed_but_unacked_legacy_batch_duplicates_nothing(settings, spool, flush_env):
    wh = flush_env
    wh.query(LEGACY_DDL)
    fill(spool, make_events(1000))
    wh.faults.next(1, method="ExecuteStatement")  # the DESCRIBE
    wh.faults.next(10, method="ExecuteStatement", drop_after_execute=True)  # MERGE commits, every reply is lost
    report = Flusher(settings, spool=spool).run()
    wh.faults.clear()
    assert report.delivered == 0 and rows_in_table(wh) == 1000  # committed in legacy mode, not acked
    code, result = flush_cli("--migrate")
    assert code == 0 and "event_id" in result["columns_added"]
    code, report = flush_cli("--ignore-backoff")
    total = rows_in_table(wh)
    print(f"SUMMARY legacy migrate: {total} rows for 1000 events ({total - 1000} duplicates), exit {code}")
    assert code == 0 and report["delivered"] == 1000
    assert total == 1000
    # later batches are keyed on event_id alone again: a new event with a colliding natural key is still inserted
    twin = list(make_events(1)[0])
    twin[0] = "new-event-id"
    fill(spool, [tuple(twin)])
    assert flush_cli()[0] == 0 and rows_in_table(wh) == 1001


def test_legacy_mode_never_collapses_distinct_events(settings, spool, flush_env):
    wh = flush_env
    wh.query(LEGACY_DDL)
    events = make_events(10)
    twin = list(events[3])
    twin[0] = "another-event-same-moment"
    events.append(tuple(twin))  # same timestamp, app, user and action as events[3]
    fill(spool, events)
    report = Flusher(settings, spool=spool).run()
    again = Flusher(settings, spool=spool).run(ignore_backoff=True)  # nothing left: no re-send either
    total = rows_in_table(wh)
    print(f"SUMMARY legacy collapse: {total} rows for 11 distinct events")
    assert report.mode == "legacy" and report.delivered == 11 and again.delivered == 0
    assert total == 11
