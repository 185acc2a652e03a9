"""Spool files written by an older version of the code are upgraded in place and keep every row."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from ctg_app.settings import Settings
from ctg_app.tracking import Actions, Spool, Tracker, set_tracker, tracked
from ctg_app.tracking.recording.spool import MIGRATIONS, SCHEMA_VERSION


def make_v1_spool(path) -> None:
    conn = sqlite3.connect(path)
    MIGRATIONS[0](sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO events (event_id, timestamp, app_name, user, action, status, details, state) "
        "VALUES ('old-1', '2026-01-01 00:00:00.000000', 'elevio-ctg-chatbot-vanna', 'a@b.c', 'app_start', 'ok', '{}', "
        "'pending')"
    )
    conn.commit()
    conn.close()


def test_a_v1_spool_is_migrated_to_the_current_schema_without_losing_rows(tmp_path):
    path = tmp_path / "spool.sqlite3"
    make_v1_spool(path)
    set_tracker(Tracker(Settings(spool_path=path)))

    @tracked(Actions.EXECUTE_SQL)
    def run():
        return "ok"

    assert run() == "ok"
    spool = Spool(path)
    assert [row["event_id"] for row in spool.rows()][0] == "old-1"
    assert [row["action"] for row in spool.rows()] == ["app_start", "execute_sql"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(events)")}
    assert {"idx_events_state_seq", "idx_events_report", "idx_events_errors"} <= indexes
