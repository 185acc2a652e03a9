"""The flush against the fake warehouse and the real connector: outages, 503s, hangs, re-sends, crashes, rivals."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from fake_databricks import FakeWarehouse
from ctg_app.tracking.delivery.flush import Flusher
from ctg_app.tracking.delivery.databricks_sink import create_table_sql
from ctg_app.tracking.recording.spool import Spool
from tests.flush.conftest import TABLE, fill, make_events, warehouse_ids


def _create_table(wh: FakeWarehouse) -> None:
    wh.query(create_table_sql(TABLE))


def _skip_describe(wh: FakeWarehouse) -> None:
    """A no-op fault consumed by the flush's first statement (DESCRIBE TABLE), so the next fault hits the MERGE."""
    wh.faults.next(1, method="ExecuteStatement")


def _assert_exactly_once(wh: FakeWarehouse, spool: Spool, events: list[tuple]) -> None:
    ids = warehouse_ids(wh)
    assert len(ids) == len(set(ids)), "duplicates in the warehouse"
    assert set(ids) == {e[0] for e in events}
    assert spool.counts()["delivered"] == len(events) and spool.counts()["pending"] == 0


def test_outage_rows_stay_pending_then_each_delivered_once(settings, spool, flush_env) -> None:
    wh = flush_env
    events = make_events(1000)
    fill(spool, events)
    wh.stop()
    t0 = time.monotonic()
    report = Flusher(settings, spool=spool, batch_size=300).run()
    assert time.monotonic() - t0 < 10  # a dead warehouse fails in seconds, not 14 minutes
    assert report.outcome == "unreachable" and report.delivered == 0
    assert "unreachable" in report.error
    assert spool.counts() == {"pending": 1000, "delivered": 0, "dead": 0}
    wh.start()
    report = Flusher(settings, spool=spool, batch_size=300).run()
    assert report.outcome == "ok" and report.delivered == 1000 and report.inserted == 1000
    _assert_exactly_once(wh, spool, events)


def test_outage_mid_run_is_partial_then_recovers(settings, spool, flush_env) -> None:
    wh = flush_env
    events = make_events(1000)
    fill(spool, events)

    def stop_after_first(_n: int, report) -> None:
        if report.batches == 1:
            wh.stop()

    report = Flusher(settings, spool=spool, batch_size=200).run(progress=stop_after_first)
    assert report.outcome == "partial" and 200 <= report.delivered < 1000
    assert report.released > 0
    rows = spool.connection().execute("SELECT attempts, last_error FROM events WHERE attempts > 0").fetchall()
    assert rows and all("unreachable" in err for _, err in rows)
    assert spool.connection().execute("SELECT COUNT(*) FROM events WHERE lease_owner IS NOT NULL").fetchone()[0] == 0
    wh.start()
    report = Flusher(settings, spool=spool, batch_size=200).run(ignore_backoff=True)
    assert report.outcome == "ok"
    _assert_exactly_once(wh, spool, events)


@pytest.mark.parametrize(("n", "fault", "table_first", "released"), [
    # every call answers 503: the sink cannot even open, nothing is claimed
    pytest.param(500, {"count": 100, "http_status": 503, "retry_after": 1}, False, False, id="503-storm"),
    # the MERGE hangs past the timeout: the claimed batch is released with backoff
    pytest.param(300, {"count": 5, "method": "ExecuteStatement", "hang": True, "hang_timeout": 15}, True, True,
                 id="hang"),
])
def test_transient_fault_stops_fast_then_delivered_once(settings, spool, flush_env, n, fault, table_first,
                                                        released) -> None:
    wh = flush_env
    if table_first:
        _create_table(wh)
    events = make_events(n)
    fill(spool, events)
    if table_first:
        _skip_describe(wh)
    fault = dict(fault)
    wh.faults.next(fault.pop("count"), **fault)
    t0 = time.monotonic()
    report = Flusher(settings, spool=spool).run()
    took = time.monotonic() - t0
    wh.faults.clear()
    assert took < 10 and report.outcome == "unreachable"
    assert spool.counts()["pending"] == n
    attempts = spool.connection().execute("SELECT MIN(attempts) FROM events").fetchone()[0]
    if released:
        assert attempts == 1  # released, with backoff
        assert Flusher(settings, spool=spool).run().delivered == 0  # still backing off
    else:
        assert attempts == 0  # never claimed
    report = Flusher(settings, spool=spool).run(ignore_backoff=True)
    assert report.outcome == "ok"
    _assert_exactly_once(wh, spool, events)


def test_slow_reply_resent_by_client_gives_no_duplicates(settings, spool, flush_env) -> None:
    wh = flush_env
    _create_table(wh)
    events = make_events(400)
    fill(spool, events)
    _skip_describe(wh)
    wh.faults.next(1, method="ExecuteStatement", delay=2.5)  # slower than the 2 s socket timeout: the client re-sends
    report = Flusher(settings, spool=spool).run()
    if report.outcome != "ok":  # the re-send may also have timed out: the next run must still add nothing twice
        report = Flusher(settings, spool=spool).run(ignore_backoff=True)
    merges = [s for s in wh.statements if s.lstrip().startswith("MERGE")]
    assert len(merges) >= 2  # the statement really went twice
    _assert_exactly_once(wh, spool, events)


def test_connection_dropped_after_commit_gives_no_duplicates(settings, spool, flush_env) -> None:
    wh = flush_env
    _create_table(wh)
    events = make_events(400)
    fill(spool, events)
    _skip_describe(wh)
    wh.faults.next(1, method="ExecuteStatement", drop_after_execute=True)
    report = Flusher(settings, spool=spool).run()
    assert report.outcome == "ok" and report.delivered == 400 and report.inserted == 0  # the re-send found them all
    _assert_exactly_once(wh, spool, events)


def test_concurrent_merge_conflicts_are_retried(settings, spool, flush_env) -> None:
    wh = flush_env
    _create_table(wh)
    events = make_events(300)
    fill(spool, events)
    _skip_describe(wh)
    wh.faults.next(2, method="ExecuteStatement", conflict=True)
    report = Flusher(settings, spool=spool).run()
    assert report.outcome == "ok" and report.conflicts == 2
    _assert_exactly_once(wh, spool, events)


def test_sigkill_after_commit_before_ack_then_reflush_adds_nothing(settings, spool, flush_env) -> None:
    wh = flush_env
    _create_table(wh)
    events = make_events(600)
    fill(spool, events)
    _skip_describe(wh)
    wh.faults.next(1, method="ExecuteStatement", delay=30)  # commits, then holds the reply
    env = {**os.environ, "WAREHOUSE_TIMEOUT_S": "60"}  # no client re-send: the process dies waiting
    proc = subprocess.Popen([sys.executable, "-m", "ctg_app.tracking.delivery.cli", "--lease-seconds", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(warehouse_ids(wh)) < 600:
            time.sleep(0.05)
        assert len(warehouse_ids(wh)) == 600  # the warehouse committed the batch ...
        assert spool.counts()["delivered"] == 0  # ... the spool does not know yet
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    wh.faults.clear()
    assert spool.connection().execute("SELECT COUNT(*) FROM events WHERE lease_owner IS NOT NULL").fetchone()[0] == 600
    time.sleep(1.1)  # the dead flusher's lease expires
    report = Flusher(settings, spool=spool).run()
    assert report.outcome == "ok" and report.delivered == 600 and report.inserted == 0
    _assert_exactly_once(wh, spool, events)


def test_two_flushers_at_once_no_duplicates(settings, spool, flush_env) -> None:
    wh = flush_env
    _create_table(wh)
    events = make_events(12000)
    fill(spool, events)
    reports = []

    def run() -> None:
        reports.append(Flusher(settings, spool=Spool(settings.spool_path), batch_size=500).run())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.outcome for r in reports] == ["ok", "ok"]
    assert sum(r.delivered for r in reports) == 12000 and all(r.delivered > 0 for r in reports)
    assert sum(r.inserted for r in reports) == 12000
    _assert_exactly_once(wh, spool, events)


def test_100k_events_warehouse_ids_equal_spool_ids(settings, spool, flush_env) -> None:
    wh = flush_env
    events = make_events(100_000)
    fill(spool, events)
    wh.reset_stats()
    report = Flusher(settings, spool=spool, batch_size=4000).run()
    assert report.outcome == "ok" and report.delivered == 100_000
    ids = warehouse_ids(wh)
    spool_ids = [r[0] for r in spool.connection().execute("SELECT event_id FROM events")]
    assert Counter(ids) == Counter(spool_ids)
    merges = [s for s in wh.statements if s.lstrip().startswith("MERGE")]
    assert len(merges) <= 100  # <= 1 statement per 1,000 events
    row = wh.query(f"SELECT timestamp, user, action, status, details FROM {TABLE} WHERE event_id = ?", [events[5][0]])
    assert row[0][0] == dt.datetime.fromisoformat(events[5][1]).replace(tzinfo=dt.timezone.utc) and row[0][1:] == (events[5][3], events[5][4], events[5][6], events[5][11])
