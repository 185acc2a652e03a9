"""The edges of delivery (issue 10): errors decided by class, an oversized event, a clock that jumped, the size cap.
Real spool files, the real connector and the fake warehouse; the smallest volume that still shows each point."""

from __future__ import annotations

import io
import json
import time
from contextlib import redirect_stdout
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time

from ctg_app.tracking.delivery.cli import main
from ctg_app.tracking.delivery.databricks_sink import create_table_sql
from ctg_app.tracking.delivery.flush import Flusher
from ctg_app.tracking.delivery.leases import Delivery
from tests.flush.conftest import TABLE, fill, make_events, warehouse_ids


def flush_cli(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue())


def test_one_oversized_event_is_dead_lettered_alone(settings, spool, flush_env):
    """A 1.5 MB event among 2,999 normal ones (written straight into the spool: record-time bounds do not apply):
    the 2,999 are delivered, the big one alone is dead-lettered and counted."""
    events = make_events(3000)
    big = list(events[1500])
    big[8] = "x" * 1_500_000  # error_message
    events[1500] = tuple(big)
    fill(spool, events)
    report = Flusher(settings, spool=spool).run()
    ids = warehouse_ids(flush_env)
    print(f"SUMMARY oversized event: delivered {len(ids)}/2999 batch-mates, dead {spool.counts()['dead']}")
    assert sorted(ids) == sorted(e[0] for i, e in enumerate(events) if i != 1500)
    assert spool.counts() == {"pending": 0, "delivered": 2999, "dead": 1}
    assert report.dead == 1 and report.outcome == "partial"
    assert Delivery(spool).retry_dead() == 1  # replaying it cannot take its batch-mates down either
    assert Flusher(settings, spool=spool).run().dead == 1 and len(warehouse_ids(flush_env)) == 2999


def test_a_transient_server_error_never_dead_letters(settings, spool, flush_env):
    wh = flush_env
    events = make_events(500)
    fill(spool, events)
    wh.query(create_table_sql(TABLE))
    wh.faults.next(1, method="ExecuteStatement")  # the DESCRIBE
    wh.faults.next(1, method="ExecuteStatement", server_error=("INTERNAL_ERROR", "XX000"))
    report = Flusher(settings, spool=spool).run()
    print(f"SUMMARY transient server error: dead {spool.counts()['dead']}, outcome {report.outcome}")
    assert spool.counts()["dead"] == 0 and report.outcome == "unreachable"
    report = Flusher(settings, spool=spool).run(ignore_backoff=True)
    assert report.outcome == "ok" and sorted(warehouse_ids(wh)) == sorted(e[0] for e in events)


def test_wrong_column_types_pause_delivery_and_it_resumes_once_fixed(flush_env, spool, monkeypatch):
    wh = flush_env
    events = make_events(300)
    fill(spool, events)
    wh.query(f"CREATE TABLE {TABLE} (`timestamp` TIMESTAMP, app_name STRING, `user` INT, action STRING)")
    code, report = flush_cli()
    print(f"SUMMARY wrong column types: exit {code}, dead {spool.counts()['dead']}, "
          f"pending {spool.counts()['pending']}")
    assert code == 3 and report["dead"] == 0 and spool.counts()["pending"] == 300
    wh.query(f"DROP TABLE {TABLE}")  # the operator fixes the table (here: lets the flush create it)
    code, report = flush_cli()  # a plain run: no --retry-dead, no --ignore-backoff
    assert code == 0 and sorted(warehouse_ids(wh)) == sorted(e[0] for e in events)


def test_table_dropped_mid_run_pauses_with_exit_3_then_resumes(settings, spool, flush_env):
    wh = flush_env
    events = make_events(900)
    fill(spool, events)

    def drop_after_first(_n: int, report) -> None:
        if report.batches == 1:
            wh.query(f"DROP TABLE {TABLE}")

    report = Flusher(settings, spool=spool, batch_size=300).run(progress=drop_after_first)
    print(f"SUMMARY dropped table: outcome {report.outcome}, dead {spool.counts()['dead']}")
    assert report.outcome == "config" and spool.counts()["dead"] == 0
    code, _ = flush_cli()  # a plain run re-creates the table and delivers the rest (the first 300 went with it)
    assert code == 0 and sorted(warehouse_ids(wh)) == sorted(e[0] for e in events[300:])


def test_clock_a_year_ahead_then_back_strands_nothing(settings, spool, flush_env):
    """Under a clock one year ahead, a failed send sets retry times and a crashed flusher leaves a lease; once the
    clock is right again a plain flush delivers everything."""
    wh = flush_env
    events = make_events(100)
    fill(spool, events)
    wh.query(create_table_sql(TABLE))
    ahead = datetime.now() + timedelta(days=365)
    with freeze_time(ahead, tick=True):
        assert len(Delivery(spool).claim("crashed-flusher", 50, 300)) == 50  # a lease until next year, never settled
        failed = Delivery(spool).claim("failed-flusher", 50, 300)  # the other 50: a send failed, retry "next year"
        assert Delivery(spool).release("failed-flusher", failed.seqs, "warehouse unreachable") == 50
    report = Flusher(settings, spool=spool).run()
    print(f"SUMMARY clock +1y then back: delivered {len(warehouse_ids(wh))}/100 by a plain flush")
    assert report.outcome == "ok" and sorted(warehouse_ids(wh)) == sorted(e[0] for e in events)


@pytest.mark.parametrize("cap_mb", [1, 3])
def test_size_cap_keeps_what_fits(settings, spool, cap_mb):
    """Undelivered events (no warehouse) over a cap: the newest that fit stay, at least 95 % of what fits."""
    events = make_events(24_000)
    fill(spool, events)
    delivery = Delivery(spool)
    full = delivery.used_bytes()
    per_event = full / len(events)
    fits = int(cap_mb * 1024 * 1024 / per_event)
    result = delivery.enforce_cap(cap_mb * 1024 * 1024)
    kept = spool.counts()["pending"]
    print(f"SUMMARY cap {cap_mb} MB: kept {kept} of {fits} that fit ({kept / fits:.0%}), "
          f"dropped {result.dropped_undelivered}, spool {delivery.used_bytes() / 1e6:.2f} MB")
    assert kept >= 0.95 * fits
    assert delivery.used_bytes() <= cap_mb * 1024 * 1024
    assert result.dropped_undelivered == len(events) - kept == spool.counters()["dropped_cap"]
    kept_ids = {row["event_id"] for row in spool.rows()}
    assert kept_ids == {e[0] for e in events[-kept:]}  # the newest ones


def test_size_cap_never_drops_rows_in_flight(settings, spool):
    events = make_events(12_000)
    fill(spool, events)
    delivery = Delivery(spool)
    batch = delivery.claim("other-flusher", 8_000, 300)  # on the wire right now
    delivery.enforce_cap(1024 * 1024)
    leased = spool.connection().execute("SELECT COUNT(*) FROM events WHERE lease_owner = 'other-flusher'")
    assert leased.fetchone()[0] == 8_000
    assert delivery.ack("other-flusher", batch.seqs) == 8_000
    assert spool.counters().get("dropped_cap", 0) == 12_000 - 8_000 - spool.counts()["pending"]


@pytest.mark.parametrize("value", ["0", "-5"])
def test_size_cap_setting_is_validated(value, monkeypatch, capsys):
    monkeypatch.setenv("SPOOL_MAX_MB", value)
    code = main(["--status"])
    assert code == 3
    assert "SPOOL_MAX_MB" in capsys.readouterr().err
