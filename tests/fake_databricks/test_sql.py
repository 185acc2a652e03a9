"""The fake warehouse through the real databricks-sql-connector: dialect, parameters, results, limits."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import time
import uuid
from collections import Counter

import pandas as pd
import pytest
from databricks import sql
from databricks.sql.exc import RequestError, ServerOperationError

from fake_databricks import FakeWarehouse
from ctg_app.tracking.analytics.spec_sql import SPEC_CREATE_TABLE, SPEC_QUERIES

TABLE = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"
APP = "elevio-ctg-chatbot-vanna"

# ---- verbatim from the spec (one copy: ctg_app.tracking.analytics.spec_sql) ----
SPEC_CREATE = SPEC_CREATE_TABLE
SPEC_DAILY_ACTIVE, SPEC_POPULAR, SPEC_SQL_EDITING, SPEC_ERRORS = SPEC_QUERIES.values()

MERGE_EVENTS = """MERGE INTO elevio_group___rag_pilot.rag_core_blocks.central_app_usage AS t
USING (SELECT inline(from_json(:events, 'ARRAY<STRUCT<event_id: STRING, timestamp: TIMESTAMP, app_name: STRING, user: STRING, action: STRING, operation: STRING, status: STRING, error_type: STRING, error_message: STRING, duration_ms: DOUBLE, session_id: STRING, details: STRING>>'))) AS s
ON t.event_id = s.event_id
WHEN NOT MATCHED THEN INSERT (timestamp, app_name, user, action, event_id, operation, status, error_type, error_message, duration_ms, session_id, details)
VALUES (s.timestamp, s.app_name, s.user, s.action, s.event_id, s.operation, s.status, s.error_type, s.error_message, s.duration_ms, s.session_id, s.details)"""

ADD_COLUMNS = (f"ALTER TABLE {TABLE} ADD COLUMNS (event_id STRING, operation STRING, status STRING, "
               "error_type STRING, error_message STRING, duration_ms DOUBLE, session_id STRING, details STRING)")


def _connect(wh: FakeWarehouse, **kw):
    return sql.connect(**wh.connect_kwargs(**kw))


def _events(n: int, app: str = APP) -> list[dict]:
    ts = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return [dict(event_id=str(uuid.uuid4()), timestamp=ts.strftime("%Y-%m-%d %H:%M:%S.%f"), app_name=app,
                 user=f"user{i % 7}@x.com", action="sql_query", operation="op", status="ok", error_type=None,
                 error_message=None, duration_ms=12.5, session_id="s1", details=json.dumps({"i": i}))
            for i in range(n)]


def _usage_table(wh: FakeWarehouse) -> None:
    wh.query(SPEC_CREATE)
    wh.query(ADD_COLUMNS)


def test_spec_create_and_example_queries(fake_warehouse: FakeWarehouse) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = []  # (timestamp, app, user, action)
    for user, action in [("a", "sql_error"), ("b", "sql_error"), ("a", "llm_error"), ("a", "app_start"),
                         ("b", "app_start"), ("c", "app_start"), ("a", "sql_query"), ("b", "sql_query"),
                         ("a", "edit_sql"), ("c", "execute_sql")]:
        rows.append((now - dt.timedelta(hours=1), APP, user, action))
    for user, action in [("a", "app_start"), ("d", "database_error"), ("d", "sql_query")]:
        rows.append((now - dt.timedelta(days=3), APP, user, action))
    for user, action in [("e", "app_start"), ("e", "sql_error")]:
        rows.append((now - dt.timedelta(days=10), APP, user, action))
    rows.append((now - dt.timedelta(hours=1), "other-app", "z", "sql_error"))

    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute(SPEC_CREATE)
        cur.execute(SPEC_CREATE)  # IF NOT EXISTS
        values = ", ".join(f"(:ts{i}, :app{i}, :user{i}, :action{i})" for i in range(len(rows)))
        params = {}
        for i, (ts, app, user, action) in enumerate(rows):
            params.update({f"ts{i}": ts, f"app{i}": app, f"user{i}": user, f"action{i}": action})
        cur.execute(f"INSERT INTO {TABLE} (timestamp, app_name, user, action) VALUES {values}", params)
        assert cur.rowcount == len(rows)

        mine = [r for r in rows if r[1] == APP]
        cur.execute(SPEC_DAILY_ACTIVE)
        got = cur.fetchall()
        per_day: dict[dt.date, set] = {}
        for ts, _, user, _ in mine:
            per_day.setdefault(ts.date(), set()).add(user)
        assert [tuple(r) for r in got] == sorted(((d, len(u)) for d, u in per_day.items()), reverse=True)
        assert isinstance(got[0][0], dt.date) and isinstance(got[0][1], int)

        today = now.date()

        def window(days: int, pred) -> Counter:
            start = dt.datetime.combine(today - dt.timedelta(days=days), dt.time())
            return Counter(a for ts, _, _, a in mine if ts >= start and pred(a))

        for query, days, pred in [
            (SPEC_POPULAR, 7, lambda a: True),
            (SPEC_SQL_EDITING, 7, lambda a: a in ("sql_query", "edit_sql", "execute_sql")),
            (SPEC_ERRORS, 1, lambda a: "error" in a),
        ]:
            cur.execute(query)
            got = [tuple(r) for r in cur.fetchall()]
            assert dict(got) == dict(window(days, pred)), query
            assert [c for _, c in got] == sorted((c for _, c in got), reverse=True)
        assert cur.description[1][0] == "error_count"


def test_named_and_positional_params_types_and_nulls(fake_warehouse: FakeWarehouse) -> None:
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS c.s.typed (ts TIMESTAMP, d DATE, s STRING, i INT, b BIGINT, "
                    "f DOUBLE, dec DECIMAL(10,2), ok BOOLEAN)")
        ts = dt.datetime(2026, 1, 2, 3, 4, 5, 123456)
        cur.execute("INSERT INTO c.s.typed (ts, d, s, i, b, f, dec, ok) VALUES (:ts, :d, :s, :i, :b, :f, :dec, :ok), "
                    "(:ts, :d, :n, :i, :b, :f, :dec, :ok)",
                    {"ts": ts, "d": dt.date(2026, 1, 2), "s": "x", "i": 7, "b": 2**40, "f": 1.5,
                     "dec": decimal.Decimal("3.25"), "ok": True, "n": None})
        assert cur.rowcount == 2
        cur.execute("INSERT INTO c.s.typed (ts, d, s, i, b, f, dec, ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [None] * 8)
        assert cur.rowcount == 1
        cur.execute("SELECT ts, d, s, i, b, f, dec, ok FROM c.s.typed ORDER BY s NULLS LAST")
        rows = [tuple(r) for r in cur.fetchall()]
        # as on Databricks: a naive parameter is read in the session time zone (UTC here), the value comes back aware
        aware = ts.replace(tzinfo=dt.timezone.utc)
        assert rows[0] == (aware, dt.date(2026, 1, 2), "x", 7, 2**40, 1.5, decimal.Decimal("3.25"), True)
        assert rows[1][2] is None and rows[1][0] == aware and rows[0][0].utcoffset() == dt.timedelta(0)
        assert rows[2] == (None,) * 8
        assert [d[1] for d in cur.description] == ["timestamp", "date", "string", "int", "bigint", "double",
                                                    "decimal", "boolean"]
        cur.execute("SELECT COUNT(*) FROM c.s.typed WHERE ts >= :since", {"since": dt.datetime(2026, 1, 1)})
        assert cur.fetchone()[0] == 2


def test_merge_exactly_once_on_event_id(fake_warehouse: FakeWarehouse) -> None:
    _usage_table(fake_warehouse)
    batch = _events(3)
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute(MERGE_EVENTS, {"events": json.dumps(batch)})
        assert cur.rowcount == 3
        cur.execute(MERGE_EVENTS, {"events": json.dumps(batch)})  # replay: nothing new
        assert cur.rowcount == 0
        more = batch[:1] + _events(2)
        cur.execute(MERGE_EVENTS, {"events": json.dumps(more)})
        assert cur.rowcount == 2
        cur.execute(f"SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {TABLE}")
        assert tuple(cur.fetchone()) == (5, 5)
        cur.execute(f"SELECT timestamp, user, details, duration_ms FROM {TABLE} WHERE event_id = :e",
                    {"e": batch[0]["event_id"]})
        row = cur.fetchone()
        assert row[0] == dt.datetime.strptime(batch[0]["timestamp"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
        assert (row[1], row[2], row[3]) == (batch[0]["user"], batch[0]["details"], 12.5)


def test_merge_natural_key_variant(fake_warehouse: FakeWarehouse) -> None:
    fake_warehouse.query(SPEC_CREATE)
    merge = f"""MERGE INTO {TABLE} AS t
USING (SELECT inline(from_json(:events, 'ARRAY<STRUCT<timestamp: TIMESTAMP, app_name: STRING, user: STRING, action: STRING>>'))) AS s
ON t.timestamp = s.timestamp AND t.app_name = s.app_name AND t.user = s.user AND t.action = s.action
WHEN NOT MATCHED THEN INSERT (timestamp, app_name, user, action) VALUES (s.timestamp, s.app_name, s.user, s.action)"""
    batch = [{"timestamp": f"2026-11-27 20:40:3{i}.123456", "app_name": APP, "user": "u", "action": "app_start"}
             for i in range(4)]
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute(merge, {"events": json.dumps(batch)})
        assert cur.rowcount == 4
        cur.execute(merge, {"events": json.dumps(batch)})
        assert cur.rowcount == 0
    assert fake_warehouse.query(f"SELECT COUNT(*) FROM {TABLE}") == [(4,)]


def test_merge_5000_events_into_1m_rows_is_fast(fake_warehouse: FakeWarehouse) -> None:
    _usage_table(fake_warehouse)
    fake_warehouse.engine.cursor().execute(  # 1M existing rows, bulk-generated inside DuckDB
        f"INSERT INTO {TABLE} (timestamp, app_name, \"user\", action, event_id, status, duration_ms) "
        "SELECT TIMESTAMP '2026-01-01' + to_microseconds(i), 'app', 'u' || (i % 100), 'act', uuid()::VARCHAR, "
        "'ok', 1.0 FROM range(1000000) r(i)")
    def payload(n: int, minimal: bool) -> str:
        events = _events(n)
        keep = ("event_id", "timestamp", "app_name", "user", "action", "status", "duration_ms")
        events = [{k: v for k, v in e.items() if v is not None and (not minimal or k in keep)} for e in events]
        text = json.dumps(events, separators=(",", ":"))
        assert len(text.encode()) <= 1024 * 1024  # Databricks' 1 MB parameter limit
        return text

    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        rates = {}
        for n, minimal in [(5000, True), (3800, False)]:
            timings = []
            for _ in range(3):
                batch = payload(n, minimal)
                t0 = time.perf_counter()
                cur.execute(MERGE_EVENTS, {"events": batch})
                timings.append(time.perf_counter() - t0)
                assert cur.rowcount == n
            rates[n] = (round(min(timings), 3), round(n / min(timings)))
            assert max(timings) < 1.0
        t0 = time.perf_counter()
        cur.execute(MERGE_EVENTS, {"events": batch})  # replay of the last batch
        replay = time.perf_counter() - t0
        assert cur.rowcount == 0
    print(f"\nMERGE into 1M rows, (best seconds, events/s) per batch size: {rates}; replay {replay:.3f} s")
    assert fake_warehouse.query(f"SELECT COUNT(*) FROM {TABLE}") == [(1_000_000 + 3 * 5000 + 3 * 3800,)]


def test_ddl_and_metadata_statements(fake_warehouse: FakeWarehouse) -> None:
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS fresh_cat.fresh_schema")
        cur.execute(SPEC_CREATE)
        cur.execute(ADD_COLUMNS)
        cur.execute(f"DESCRIBE TABLE {TABLE}")
        cols = {r[0]: r[1] for r in cur.fetchall()}
        assert cols["user"] == "string" and cols["timestamp"] == "timestamp" and cols["duration_ms"] == "double"
        cur.execute(f"SHOW COLUMNS IN {TABLE}")
        assert "event_id" in [r[0] for r in cur.fetchall()]
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'central_app_usage'")
        assert "session_id" in [r[0] for r in cur.fetchall()]
        cur.execute(f"INSERT INTO {TABLE} (timestamp, app_name, user, action) VALUES (current_timestamp(), 'a', 'u', 'x'), "
                    "(current_timestamp(), 'a', 'u', 'y')")
        cur.execute(f"DESCRIBE DETAIL {TABLE}")
        detail = cur.fetchone().asDict()
        assert detail["format"] == "delta" and detail["name"] == TABLE
        assert detail["numFiles"] >= 1 and detail["sizeInBytes"] > 0
        cur.execute(f"DELETE FROM {TABLE} WHERE action = 'x'")
        assert cur.rowcount == 1
        cur.execute(f"SELECT COUNT(*) FROM {TABLE}")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT 1")
        assert cur.fetchall()[0][0] == 1
        cur.execute("CREATE TABLE IF NOT EXISTS other_cat.other_schema.t2 (x INT) USING DELTA "
                    "COMMENT 'c' TBLPROPERTIES ('delta.appendOnly' = 'true')")


def test_analytics_functions(fake_warehouse: FakeWarehouse) -> None:
    _usage_table(fake_warehouse)
    base = dt.datetime(2026, 3, 1, 10, 0)
    df = pd.DataFrame({"timestamp": [base + dt.timedelta(minutes=10 * i) for i in range(10)],
                       "app_name": APP, "user": [f"u{i % 3}" for i in range(10)],
                       "action": ["sql_error" if i % 4 == 0 else "sql_query" for i in range(10)],
                       "status": ["error" if i % 4 == 0 else "ok" for i in range(10)],
                       "duration_ms": [float(i + 1) for i in range(10)]})
    fake_warehouse.load_dataframe(TABLE, df)
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute(f"""SELECT date_trunc('HOUR', timestamp) AS hour, COUNT(*) AS n,
                 COUNT(*) FILTER (WHERE status = 'error') AS errors,
                 SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS oks,
                 percentile(duration_ms, 0.5) AS p50, percentile_approx(duration_ms, 0.5) AS p50a
                 FROM {TABLE} WHERE timestamp >= :since AND app_name = :app
                 GROUP BY date_trunc('HOUR', timestamp) ORDER BY hour""",
                    {"since": dt.datetime(2026, 3, 1), "app": APP})
        rows = [tuple(r) for r in cur.fetchall()]
    assert rows[0][:4] == (dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc), 6, 2, 4)
    assert rows[0][4] == pytest.approx(3.5)
    assert isinstance(rows[0][3], int)
    assert rows[1][:4] == (dt.datetime(2026, 3, 1, 11, 0, tzinfo=dt.timezone.utc), 4, 1, 3)


def test_initial_namespace(fake_warehouse: FakeWarehouse) -> None:
    fake_warehouse.query(SPEC_CREATE)
    with _connect(fake_warehouse, catalog="elevio_group___rag_pilot", schema="rag_core_blocks") as conn:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO central_app_usage (timestamp, app_name, user, action) VALUES (:t, 'a', 'u', 'x')",
                        {"t": dt.datetime(2026, 1, 1)})
            cur.execute("SELECT COUNT(*) FROM central_app_usage")
            assert cur.fetchone()[0] == 1


def test_parameter_limits(fake_warehouse: FakeWarehouse) -> None:
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute("SELECT " + " + ".join(f":p{i}" for i in range(255)), {f"p{i}": 1 for i in range(255)})
        assert cur.fetchone()[0] == 255
        with pytest.raises(ServerOperationError, match="255"):
            cur.execute("SELECT " + " + ".join(f":p{i}" for i in range(256)), {f"p{i}": 1 for i in range(256)})
        with pytest.raises(ServerOperationError, match="255"):
            cur.execute("SELECT " + " + ".join("?" for _ in range(256)), [1] * 256)
        cur.execute("SELECT length(:s)", {"s": "x" * 1_000_000})
        assert cur.fetchone()[0] == 1_000_000
        with pytest.raises(ServerOperationError, match="1 MB"):
            cur.execute("SELECT length(:s)", {"s": "x" * (1024 * 1024 + 1)})


def test_large_result_is_paged(fake_warehouse: FakeWarehouse) -> None:
    n = 10_000
    fake_warehouse.load_dataframe("c.s.big", pd.DataFrame({"id": range(n), "label": [f"row{i}" for i in range(n)]}))
    fake_warehouse.reset_stats()
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, label FROM c.s.big ORDER BY id")
        rows = cur.fetchall()
    assert [r[0] for r in rows] == list(range(n)) and rows[-1][1] == f"row{n - 1}"
    assert fake_warehouse.method_counts.get("FetchResults", 0) > 1


def test_sql_errors_are_server_operation_errors(fake_warehouse: FakeWarehouse) -> None:
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        with pytest.raises(ServerOperationError, match="42P01"):
            cur.execute("SELECT * FROM nope.nope.nope")
        with pytest.raises(ServerOperationError, match="42601"):
            cur.execute("SELEC 1")
        cur.execute("SELECT 2")  # the session still works
        assert cur.fetchone()[0] == 2


def test_tls_mode() -> None:
    with FakeWarehouse(tls=True) as wh:
        assert wh.uri.startswith("https://") and wh.env()["DATABRICKS_TLS_CA_FILE"] == wh.ca_file
        with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 41 + 1")
            assert cur.fetchone()[0] == 42


def test_wrong_token_is_rejected_quickly(fake_warehouse: FakeWarehouse) -> None:
    t0 = time.monotonic()
    with pytest.raises(RequestError):
        sql.connect(**fake_warehouse.connect_kwargs(access_token="dapi-wrong"))
    assert time.monotonic() - t0 < 2
    assert fake_warehouse.statement_count == 0


def test_direct_query_and_statement_log(fake_warehouse: FakeWarehouse) -> None:
    fake_warehouse.query("CREATE TABLE IF NOT EXISTS c.s.t (x INT)")
    fake_warehouse.query("INSERT INTO c.s.t VALUES (:x)", {"x": 5})
    with _connect(fake_warehouse) as conn, conn.cursor() as cur:
        cur.execute("SELECT x FROM c.s.t")
        assert cur.fetchall()[0][0] == 5
    assert fake_warehouse.statements == ["SELECT x FROM c.s.t"]
