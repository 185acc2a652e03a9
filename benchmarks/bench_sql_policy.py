"""Adversarial chat SQL: each bypass attempt through *Edit SQL* (``operations.run_edited_sql``) on both data sources.

Runs every attempt against the sample SQLite database and against the fake Databricks warehouse (sample tables in
``ctg.project_controlling`` plus the usage table with one row) through the real databricks-sql-connector, and prints,
per attempt, what happened (refused / error / ran and how many rows), how long it took, and the row counts of
``projects`` and of the usage table afterwards — so a deleted or forged row shows. A run-away attempt is abandoned
after ``--give-up`` seconds. The last line: ``SUMMARY source=… refused=… ran=… data_changed=… stuck=…``.

Usage: python benchmarks/bench_sql_policy.py [sqlite|warehouse] [--timeout-s 3] [--give-up 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CENTRAL = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"
SCHEMA = "ctg.project_controlling"
CASES = [
    ("usage table, three-part name", f"SELECT user, action, timestamp FROM {CENTRAL}"),
    ("usage table, backtick-quoted", "SELECT * FROM `elevio_group___rag_pilot`.`rag_core_blocks`.`central_app_usage`"),
    ("usage table in a subquery", f"SELECT project_id FROM projects WHERE project_id IN (SELECT 1 FROM {CENTRAL})"),
    ("usage table in UNION", f"SELECT project_code FROM projects UNION ALL SELECT user FROM {CENTRAL}"),
    ("CTE DELETE on usage table", f"WITH d AS (DELETE FROM {CENTRAL} RETURNING 1) SELECT COUNT(*) FROM d"),
    ("CTE DELETE on projects", "WITH d AS (DELETE FROM projects RETURNING 1) SELECT COUNT(*) FROM d"),
    ("CTE INSERT into usage table", f"WITH i AS (INSERT INTO {CENTRAL} (timestamp, app_name, user, action) "
     "VALUES (now(), 'x', 'forged@x', 'app_start') RETURNING 1) SELECT COUNT(*) FROM i"),
    ("nested CTE DML", "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM (WITH d AS (DELETE FROM projects "
     "RETURNING 1) SELECT * FROM d)) SELECT * FROM b"),
    ("plain DELETE", "DELETE FROM projects"),
    ("lower-case delete", "delete from projects"),
    ("second statement after ;", "SELECT 1; DROP TABLE projects"),
    ("statement hidden behind comment", "SELECT 1 /* harmless */; DELETE FROM projects -- tail"),
    ("line comment then ;", "SELECT 1 --\n; DELETE FROM projects"),
    ("fullwidth SELECT (unicode)", "ＳＥＬＥＣＴ * FROM projects"),
    ("Cyrillic e in table name", "SELECT * FROM proj\u0435cts"),
    ("EXPLAIN", "EXPLAIN SELECT * FROM projects"),
    ("SHOW TABLES", "SHOW TABLES"),
    ("DESCRIBE", "DESCRIBE projects"),
    ("SET", "SET x = 1"),
    ("USE", "USE elevio_group___rag_pilot.rag_core_blocks"),
    ("PRAGMA", "PRAGMA table_info(projects)"),
    ("ATTACH", "ATTACH DATABASE '/tmp/llmsec-x.db' AS x"),
    ("read_csv table function", "SELECT * FROM read_csv('/etc/passwd')"),
    ("Databricks path table csv.`…`", "SELECT * FROM csv.`/etc/passwd`"),
    ("sqlite_master", "SELECT name, sql FROM sqlite_master"),
    ("information_schema", "SELECT * FROM information_schema.tables"),
    ("other schema", "SELECT * FROM other_catalog.other_schema.projects"),
    ("unknown column", "SELECT project_nme FROM projects"),
    ("recursive CTE forever", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r"),
    ("cross join (huge)", "SELECT * FROM hours a CROSS JOIN hours b"),
    ("ok: mixed case SELECT", "sElEcT COUNT(*) AS n FrOm projects"),
    ("ok: CTE", "WITH p AS (SELECT project_id FROM projects) SELECT COUNT(*) AS n FROM p"),
]


def attempt(vn, sql: str, give_up: float) -> tuple[str, float]:
    """Run one attempt in a thread; returns (outcome, seconds)."""
    from ctg_app.ui import operations

    out: dict = {}

    def go() -> None:
        t0 = time.monotonic()
        try:
            df = operations.run_edited_sql(vn, sql)
            out["r"] = f"RAN rows={len(df)}" + (" (capped)" if df.attrs.get("capped") else "")
        except MemoryError:
            out["r"] = "MemoryError"
        except Exception as e:  # noqa: BLE001 - every outcome is reported
            out["r"] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:90]}"
        out["t"] = time.monotonic() - t0

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(give_up)
    if thread.is_alive():
        return f"STILL RUNNING after {give_up:g}s", give_up
    return out["r"], out["t"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["sqlite", "warehouse"])
    parser.add_argument("--timeout-s", type=float, default=3.0, help="CHAT_QUERY_TIMEOUT_S for the run")
    parser.add_argument("--give-up", type=float, default=20.0, help="abandon an attempt after this long")
    args = parser.parse_args()
    os.environ["TRACKING_ENABLED"] = "false"
    os.environ["CHAT_QUERY_TIMEOUT_S"] = str(args.timeout_s)
    logging.disable(logging.WARNING)

    from ctg_app.ui import operations
    from ctg_app.chatbot.data.sample import ensure_sample_db, sample_tables
    from ctg_app.chatbot.assistant import build_assistant
    from ctg_app.settings import reload_settings

    tmp = tempfile.mkdtemp()
    if args.source == "sqlite":
        import sqlite3

        db = ensure_sample_db(Path(tmp) / "ctg-sample.sqlite3")
        os.environ["CTG_SAMPLE_DB_PATH"] = str(db)

        def state() -> str:
            conn = sqlite3.connect(db)
            try:
                return f"projects={conn.execute('SELECT COUNT(*) FROM projects').fetchone()[0]}"
            finally:
                conn.close()
    else:
        from fake_databricks import FakeWarehouse

        from ctg_app.tracking.analytics.spec_sql import SPEC_CREATE_TABLE

        wh = FakeWarehouse().start()
        for table, df in sample_tables().items():
            wh.load_dataframe(f"{SCHEMA}.{table}", df)
        wh.query(SPEC_CREATE_TABLE)
        wh.query(f"INSERT INTO {CENTRAL} (timestamp, app_name, user, action) "
                 "VALUES (TIMESTAMP'2024-01-01 00:00:00', 'a', 'boss@example.com', 'app_start')")
        os.environ.update(wh.env())
        os.environ.update({"CTG_DATA_SOURCE": "databricks", "CTG_DATA_SCHEMA": SCHEMA, "WAREHOUSE_TIMEOUT_S": "5"})

        def state() -> str:
            return (f"projects={wh.query(f'SELECT COUNT(*) FROM {SCHEMA}.projects')[0][0]} "
                    f"usage_rows={wh.query(f'SELECT COUNT(*) FROM {CENTRAL}')[0][0]}")

    reload_settings()
    vn = build_assistant()
    start = state()
    print(f"{args.source} | (start) | | | {start}")
    refused = ran = changed = stuck = 0
    for name, sql in CASES:
        operations.clear_caches()
        outcome, seconds = attempt(vn, sql, args.give_up)
        now = state()
        refused += outcome.startswith("SqlValidationError")
        ran += outcome.startswith("RAN")
        stuck += outcome.startswith("STILL")
        changed += now != start
        start = now
        print(f"{args.source} | {name} | {outcome} | {seconds:.1f}s | {now}", flush=True)
    print(f"SUMMARY source={args.source} attempts={len(CASES)} refused={refused} ran={ran} "
          f"data_changed={changed} stuck={stuck}", flush=True)
    os._exit(0)  # a stuck attempt's thread must not keep the process alive


if __name__ == "__main__":
    main()
