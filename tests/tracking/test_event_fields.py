"""The event's shape is declared once (``event.FIELDS``): the spool columns, the table DDL, the wire names and the
report columns are derived from it, and a new field is one declaration plus one spool migration."""

from __future__ import annotations

import json
import sqlite3
from typing import Optional

from ctg_app.tracking.analytics import reports
from ctg_app.tracking.delivery import databricks_sink as sink
from ctg_app.tracking.recording import event as ev
from ctg_app.tracking.recording import spool as spool_mod
from ctg_app.tracking.recording.spool import Spool


def test_everything_is_derived_from_the_declaration(tmp_path):
    names = tuple(f.name for f in ev.FIELDS)
    assert ev.Event._fields == ev.EVENT_COLUMNS == names
    assert ev.SPEC_COLUMNS == ("timestamp", "app_name", "user", "action")
    assert ev.TABLE_COLUMNS[:4] == ev.SPEC_COLUMNS and sorted(ev.TABLE_COLUMNS) == sorted(names)
    assert sink.TABLE_COLUMNS == tuple((f.name, f.delta_type) for f in ev.TABLE_FIELDS)
    assert sink.WIRE_NAMES == {f.name: f.wire for f in ev.FIELDS}
    assert len(set(sink.WIRE_NAMES.values())) == len(names)  # wire names are unique
    assert not hasattr(reports, "EVENT_COLUMNS")  # no second, differently ordered copy
    # the spool made by the migrations has every declared field, with its declared affinity
    spool = Spool(tmp_path / "s.sqlite3")
    declared = {row[1]: row[2] for row in spool.connection().execute("PRAGMA table_info(events)")}
    for field in ev.FIELDS:
        assert declared[field.name] == {str: "TEXT", float: "REAL"}[field.spool_type]
    # the wire text SQLite builds equals the Python encoding, field for field
    values = ev.Event(*ev.new_id_and_timestamp(), "app", "u@x", "execute_sql", None, "ok", None, None, 1.5, None, "{}")
    spool.append(values)
    (text,) = spool.connection().execute(f"SELECT {sink.EVENT_JSON_SQL} FROM events").fetchone()
    assert json.loads(text) == json.loads(sink.encode_event(values))


def test_adding_a_field_is_one_declaration_and_one_migration(tmp_path, monkeypatch):
    old = Spool(tmp_path / "old.sqlite3")
    old.append(ev.Event(*ev.new_id_and_timestamp(), "app", "u@x", "a", None, "ok", None, None, None, None, "{}"))
    old.close()

    tenant = ev.Field("tenant", Optional[str], str, "STRING", "tn")  # the one declaration
    fields = (*ev.FIELDS, tenant)
    monkeypatch.setattr(spool_mod, "MIGRATIONS", [*spool_mod.MIGRATIONS, spool_mod.add_field_migration(tenant)])
    monkeypatch.setattr(spool_mod, "SCHEMA_VERSION", len(spool_mod.MIGRATIONS))

    ddl = sink.create_table_sql("c.s.events", fields)
    assert "`tenant` STRING\n) USING DELTA" in ddl and ddl.index("`action`") < ddl.index("`event_id`")
    assert "'tn', \"tenant\"" in sink.event_json_sql(fields)

    upgraded = Spool(tmp_path / "old.sqlite3")  # the existing spool file is migrated on first use
    conn = upgraded.connection()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(spool_mod.MIGRATIONS)
    assert "tenant" in {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    conn.execute("UPDATE events SET tenant = 'acme'")
    (text,) = conn.execute(f"SELECT {sink.event_json_sql(fields)} FROM events").fetchone()
    assert json.loads(text)["tn"] == "acme" and json.loads(text)["a"] == "a"
    assert sqlite3.connect(tmp_path / "old.sqlite3").execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
