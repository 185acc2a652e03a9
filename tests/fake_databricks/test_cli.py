"""The ``ctg-fake-warehouse`` command as a subprocess, and the env fixture."""

from __future__ import annotations

import os
import signal
import time

from databricks import sql

from fake_databricks import FakeWarehouse
from fake_databricks.pytest_plugin import WarehouseProcess, start_process


def _connect_from_env(env: dict[str, str]):
    kw = dict(server_hostname=env["DATABRICKS_SERVER_HOSTNAME"], http_path=env["DATABRICKS_HTTP_PATH"],
              access_token=env["DATABRICKS_ACCESS_TOKEN"], _connection_uri=env["DATABRICKS_CONNECTION_URI"],
              enable_telemetry=False, _retry_stop_after_attempts_count=2, _retry_stop_after_attempts_duration=3,
              _socket_timeout=5)
    if "DATABRICKS_TLS_CA_FILE" in env:
        kw["_tls_trusted_ca_file"] = env["DATABRICKS_TLS_CA_FILE"]
    return sql.connect(**kw)


def test_process_fixture_serves_and_stops_cleanly(fake_warehouse_process: WarehouseProcess) -> None:
    env = fake_warehouse_process.env()
    assert env["DATABRICKS_CONNECTION_URI"].endswith(f":{fake_warehouse_process.port}/sql/1.0/warehouses/fake")
    with _connect_from_env(env) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS a.b.c (x INT) USING DELTA")
        cur.execute("INSERT INTO a.b.c VALUES (1), (2)")
        cur.execute("SELECT SUM(x) FROM a.b.c")
        assert cur.fetchone()[0] == 3
    assert fake_warehouse_process.stop() == 0  # SIGTERM -> clean exit 0


def test_cli_tls_and_file_database(tmp_path) -> None:
    db = str(tmp_path / "wh.duckdb")
    wp = start_process("--tls", "--db", db)
    try:
        with _connect_from_env(wp.env()) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS a.b.c (x INT)")
            cur.execute("INSERT INTO a.b.c VALUES (7)")
    finally:
        os.kill(wp.pid, signal.SIGINT)
        wp.proc.wait(10)
    assert wp.proc.returncode == 0
    with FakeWarehouse(db_path=db) as wh:  # data persisted in the DuckDB files
        assert wh.query("SELECT x FROM a.b.c") == [(7,)]


def test_env_fixture(fake_warehouse_env: FakeWarehouse) -> None:
    assert os.environ["DATABRICKS_CONNECTION_URI"] == fake_warehouse_env.uri
    t0 = time.monotonic()
    with _connect_from_env(dict(os.environ)) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    assert time.monotonic() - t0 < 2
