"""The central table (spec DDL, legacy four-column table, --migrate, spec queries), dead-letter, and the CLI."""

from __future__ import annotations

import json
import logging
import re

import pytest
from databricks import sql

from fake_databricks import FakeWarehouse
from ctg_app.settings import reload_settings
from ctg_app.tracking.delivery import cli as flush_cli
from ctg_app.warehouse.connection import (
    WarehouseConfigError,
    connect,
    connect_kwargs,
    describe_error,
    validate_table_name,
    warehouse_errors,
)
from ctg_app.tracking.delivery.flush import Flusher
from ctg_app.tracking.delivery.databricks_sink import DatabricksSink, create_table_sql
from ctg_app.tracking.analytics.spec_sql import SPEC_CREATE_TABLE as SPEC_CREATE
from ctg_app.tracking.analytics.spec_sql import SPEC_QUERIES
from tests.flush.conftest import APP, TABLE, fill, make_events, warehouse_ids



# ----- connection module ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.b.c", "elevio_group___rag_pilot.rag_core_blocks.central_app_usage",
                                  "`my-cat`.s_1.T2", "_a._b._c"])
def test_valid_table_names(name: str) -> None:
    assert validate_table_name(name) == name


@pytest.mark.parametrize("name", ["a.b", "a.b.c.d", "a.b.c; DROP TABLE x", "a.b.`c`d", "1a.b.c", "a.b.c--", "",
                                  "a. b.c", "a.b.c d"])
def test_invalid_table_names_name_the_setting(name: str) -> None:
    with pytest.raises(ValueError, match="TRACKING_TABLE"):
        validate_table_name(name)


def test_connect_from_settings_only(settings, flush_env: FakeWarehouse) -> None:
    kwargs = connect_kwargs(settings)
    assert kwargs["enable_telemetry"] is False and kwargs["_retry_stop_after_attempts_duration"] == 3.0
    assert kwargs["_socket_timeout"] == 2.0 and kwargs["_connection_uri"] == flush_env.uri
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT 41 + 1")
        assert cur.fetchone()[0] == 42


def test_connect_kwargs_from_databricks_apps_style_settings() -> None:
    from ctg_app.settings import Settings

    apps = Settings.from_sources({"DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net/",
                                  "DATABRICKS_WAREHOUSE_ID": "abc123", "DATABRICKS_ACCESS_TOKEN": "t" * 10})
    kwargs = connect_kwargs(apps)
    assert kwargs["server_hostname"] == "adb-1.2.azuredatabricks.net"
    assert kwargs["http_path"] == "/sql/1.0/warehouses/abc123" and "_connection_uri" not in kwargs
    with pytest.raises(WarehouseConfigError, match="DATABRICKS_HTTP_PATH"):
        connect_kwargs(Settings.from_sources({"DATABRICKS_SERVER_HOSTNAME": "h", "DATABRICKS_ACCESS_TOKEN": "t"}))


def test_connect_without_credentials_is_a_config_error(settings) -> None:
    with pytest.raises(WarehouseConfigError, match="DATABRICKS_ACCESS_TOKEN"):
        connect(settings.replace(databricks_access_token=None))
    with pytest.raises(WarehouseConfigError, match="databricks-sdk|DATABRICKS_ACCESS_TOKEN"):
        connect_kwargs(settings.replace(databricks_access_token=None, databricks_client_id="x",
                                        databricks_client_secret="dose" + "a" * 30))


def test_describe_error_is_short_and_never_shows_the_token(settings, flush_env: FakeWarehouse) -> None:
    token = "dapi" + "0123456789abcdef" * 2
    bad = settings.replace(databricks_access_token=token)
    with pytest.raises(warehouse_errors()) as info:
        connect(bad)
    message = describe_error(info.value, bad)
    assert message.startswith("token rejected (HTTP 401)") and token not in message
    flush_env.stop()
    with pytest.raises(warehouse_errors()) as info:
        connect(settings)
    assert describe_error(info.value, settings).startswith("warehouse unreachable")


# ----- the table ---------------------------------------------------------------------------------------------------


def test_flush_creates_the_spec_table_and_the_spec_queries_work(settings, spool, flush_env: FakeWarehouse) -> None:
    events = make_events(200)
    fill(spool, events)
    report = Flusher(settings, spool=spool).run()
    assert report.outcome == "ok" and report.mode == "full"
    columns = [r[0] for r in flush_env.query(f"DESCRIBE TABLE {TABLE}")]
    assert columns[:4] == ["timestamp", "app_name", "user", "action"] and "event_id" in columns
    with sql.connect(**flush_env.connect_kwargs()) as conn, conn.cursor() as cur:
        results = []
        for query in SPEC_QUERIES.values():
            cur.execute(query)
            results.append([tuple(r) for r in cur.fetchall()])
    assert results[0][0][1] == 13  # 13 distinct users today
    assert sum(c for _, c in results[1]) == 200
    assert {a for a, _ in results[2]} == {"sql_query", "edit_sql", "execute_sql"}
    assert {a for a, _ in results[3]} == {"sql_error", "llm_error"}


def test_legacy_four_column_table_then_migrate(settings, spool, flush_env: FakeWarehouse, capsys) -> None:
    wh = flush_env
    wh.query(SPEC_CREATE)
    wh.query(f"INSERT INTO {TABLE} VALUES (TIMESTAMP '2026-01-01 00:00:00', 'other-app', 'x@y.z', 'login')")
    events = make_events(300)
    fill(spool, events)
    report = Flusher(settings, spool=spool).run()
    assert report.outcome == "ok" and report.mode == "legacy" and report.inserted == 300
    # replaying the same rows (e.g. after a crash before the ack) adds nothing: natural-key dedupe
    spool.connection().execute("UPDATE events SET state = 'pending', delivered_at = NULL")
    report = Flusher(settings, spool=spool).run()
    assert report.delivered == 300 and report.inserted == 0
    assert wh.query(f"SELECT COUNT(*) FROM {TABLE} WHERE app_name = '{APP}'") == [(300,)]
    assert [r[0] for r in wh.query(f"DESCRIBE TABLE {TABLE}")] == ["timestamp", "app_name", "user", "action"]

    assert flush_cli.main(["--migrate"]) == 0
    assert "added event_id" in capsys.readouterr().out
    assert flush_cli.main(["--migrate"]) == 0
    assert "already up to date" in capsys.readouterr().out
    more = make_events(50, prefix="new-")
    fill(spool, more)
    report = Flusher(settings, spool=spool).run()
    assert report.mode == "full" and report.inserted == 50
    assert set(warehouse_ids(wh)) - {None} == {e[0] for e in more}
    assert wh.query(f"SELECT COUNT(*) FROM {TABLE}") == [(351,)]  # other app's row kept


def test_rejected_event_is_dead_lettered_alone_then_replayed(settings, spool, flush_env: FakeWarehouse, capsys) -> None:
    wh = flush_env
    wh.query(create_table_sql(TABLE))
    fill(spool, make_events(10))
    wh.faults.next(1, method="ExecuteStatement")  # the DESCRIBE
    # the warehouse refuses the data (a cast error): the batch, then each half holding event 0, then event 0 alone
    wh.faults.next(4, method="ExecuteStatement", server_error=("CAST_INVALID_INPUT", "22018"))
    report = Flusher(settings, spool=spool).run()
    assert report.outcome == "partial" and report.dead == 1 and report.delivered == 9
    assert flush_cli.main(["--status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"dead:\s+1", out) and "warehouse rejected the statement" in out
    assert flush_cli.main(["--retry-dead"]) == 0
    assert spool.counts() == {"pending": 0, "delivered": 10, "dead": 0}
    assert len(set(warehouse_ids(wh))) == 10


def test_wrong_column_type_pauses_delivery_instead_of_dead_lettering(settings, spool, flush_env: FakeWarehouse) -> None:
    wh = flush_env
    broken = f"CREATE TABLE {TABLE} (timestamp TIMESTAMP, app_name STRING, user STRING, action STRING, " \
             "event_id STRING, details INT) USING DELTA"
    wh.query(broken)  # details is INT: the JSON text cannot be cast into it
    fill(spool, make_events(30))
    report = Flusher(settings, spool=spool, batch_size=10).run()
    assert report.outcome == "config" and report.dead == 0 and "wrong type" in report.error
    assert spool.counts() == {"pending": 30, "delivered": 0, "dead": 0}
    wh.query(f"DROP TABLE {TABLE}")
    assert flush_cli.main([]) == 0  # once fixed, a plain run delivers: no --retry-dead needed
    assert spool.counts() == {"pending": 0, "delivered": 30, "dead": 0}
    assert len(set(warehouse_ids(wh))) == 30


# ----- the CLI -----------------------------------------------------------------------------------------------------


def test_help_lists_the_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit):
        flush_cli.main(["--help"])
    out = capsys.readouterr().out
    from ctg_app.exit_codes import EXIT_CODES_HELP

    assert EXIT_CODES_HELP.strip() in out  # the one table, which ctg-app prints too
    for code in ("0  success", "3  configuration error", "4  warehouse unreachable", "5  partial"):
        assert code in out


def test_cli_exit_codes_and_json(settings, spool, flush_env: FakeWarehouse, monkeypatch, capsys) -> None:
    fill(spool, make_events(100))
    assert flush_cli.main(["--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["due"] == 100 and plan["table_mode"] == "missing" and spool.counts()["pending"] == 100
    flush_env.stop()
    assert flush_cli.main(["--json"]) == flush_cli.EXIT_UNREACHABLE
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "unreachable" and result["status"]["pending"] == 100
    flush_env.start()
    assert flush_cli.main(["--batch-size", "30", "--max-batches", "2", "--ignore-backoff"]) == 0
    assert "delivered 60 events" in capsys.readouterr().out
    assert flush_cli.main(["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["delivered"] == 40 and result["status"]["pending"] == 0
    assert flush_cli.main(["--status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {"pending", "oldest_pending_age_s", "delivered", "dead", "dropped", "last_success_at",
            "last_error"} <= set(status)
    assert status["delivered"] == 100 and status["last_error"].startswith("warehouse unreachable")

    monkeypatch.setenv("TRACKING_TABLE", "not-three-parts")
    assert flush_cli.main([]) == flush_cli.EXIT_CONFIG
    assert "TRACKING_TABLE" in capsys.readouterr().err
    monkeypatch.setenv("TRACKING_TABLE", TABLE)
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "soon")
    assert flush_cli.main([]) == flush_cli.EXIT_CONFIG
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "2")
    monkeypatch.delenv("DATABRICKS_ACCESS_TOKEN")
    assert flush_cli.main([]) == flush_cli.EXIT_CONFIG


def test_token_never_in_output(settings, spool, flush_env: FakeWarehouse, monkeypatch, capsys, caplog) -> None:
    fill(spool, make_events(20))
    good = flush_env.token
    bad = "dapi" + "fedcba9876543210" * 2
    monkeypatch.setenv("DATABRICKS_ACCESS_TOKEN", bad)
    with caplog.at_level(logging.DEBUG):
        assert flush_cli.main(["-v"]) == flush_cli.EXIT_CONFIG
        assert flush_cli.main(["--json"]) == flush_cli.EXIT_CONFIG
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text
    assert "token rejected (HTTP 401)" in text
    monkeypatch.setenv("DATABRICKS_ACCESS_TOKEN", good)
    with caplog.at_level(logging.DEBUG):
        assert flush_cli.main(["-v"]) == 0
        assert flush_cli.main(["--status"]) == 0
    captured2 = capsys.readouterr()
    text += captured2.out + captured2.err + caplog.text
    assert bad not in text and good not in text
    # Every Authorization value that reached the output is redacted (one unredacted among redacted ones fails).
    assert all(value == "[REDACTED]" for value in re.findall(r"Bearer\s+(\S+)", text))
    assert spool.counts()["delivered"] == 20


def test_dry_run_and_migrate_errors_map_to_exit_codes(settings, spool, flush_env: FakeWarehouse, capsys) -> None:
    spool.connection()  # the spool exists (a missing one is a configuration error of its own); the warehouse is down
    flush_env.stop()
    assert flush_cli.main(["--dry-run"]) == flush_cli.EXIT_UNREACHABLE
    assert flush_cli.main(["--migrate"]) == flush_cli.EXIT_UNREACHABLE
    assert "unreachable" in capsys.readouterr().err
    reload_settings()


def test_sink_splits_batches_under_the_parameter_limit(settings, flush_env: FakeWarehouse) -> None:
    events = make_events(3000)
    with DatabricksSink(settings, max_param_bytes=100_000) as sink:
        result = sink.send(events)
        again = sink.send(events + events[:10])  # replay, with in-batch duplicates
    assert result.inserted == 3000 and result.statements > 3000 * 200 // 100_000
    assert again.inserted == 0
    assert len(warehouse_ids(flush_env)) == 3000
