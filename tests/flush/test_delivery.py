"""The spool's delivery protocol: leases, ack, backoff, dead-letter and replay, retention and the size cap (freezegun)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time

from ctg_app.tracking.delivery.leases import CAP_COUNTER, Delivery
from ctg_app.tracking.recording.spool import Spool
from ctg_app.tracking.recording.tracker import DROPPED_COUNTER
from tests.flush.conftest import fill, make_events


@pytest.fixture
def delivery(tmp_path) -> Delivery:
    spool = Spool(tmp_path / "spool.sqlite3")
    yield Delivery(spool)
    spool.close()


def test_claim_leases_oldest_first_and_rivals_get_other_rows(delivery: Delivery) -> None:
    fill(delivery.spool, make_events(100))
    a = delivery.claim("a", 30, 60)
    b = delivery.claim("b", 30, 60)
    assert a.seqs == list(range(1, 31)) and b.seqs == list(range(31, 61))
    assert a.events[0][0].startswith("00000000-")
    assert delivery.ack("b", a.seqs) == 0  # not b's lease
    assert delivery.ack("a", a.seqs) == 30
    assert delivery.spool.counts()["delivered"] == 30


def test_concurrent_claims_never_overlap(tmp_path) -> None:
    path = tmp_path / "spool.sqlite3"
    fill(Spool(path), make_events(3000))
    seen: list[list[int]] = []

    def worker(owner: str) -> None:
        d = Delivery(Spool(path))
        while batch := d.claim(owner, 50, 60):
            seen.append(batch.seqs)
            d.ack(owner, batch.seqs)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    flat = [s for batch in seen for s in batch]
    assert len(flat) == len(set(flat)) == 3000


def test_expired_lease_is_claimable_again(delivery: Delivery) -> None:
    fill(delivery.spool, make_events(10))
    with freeze_time("2026-03-01 12:00:00") as clock:
        assert len(delivery.claim("dead-owner", 10, 30)) == 10
        assert len(delivery.claim("b", 10, 30)) == 0
        clock.tick(31)
        batch = delivery.claim("b", 10, 30)
        assert len(batch) == 10
        assert delivery.ack("dead-owner", batch.seqs) == 0  # the old owner lost its lease
        assert delivery.ack("b", batch.seqs) == 10


def test_release_backs_off_exponentially_with_jitter(delivery: Delivery) -> None:
    fill(delivery.spool, make_events(5))
    with freeze_time("2026-03-01 12:00:00") as clock:
        waits = []
        for _ in range(4):
            batch = delivery.claim("a", 5, 30, ignore_backoff=True)
            assert delivery.release("a", batch.seqs, "warehouse unreachable") == 5
            row = delivery.spool.connection().execute("SELECT attempts, next_attempt_at, last_error FROM events").fetchone()
            waits.append(row[1] - datetime.now().timestamp())
            assert row[2] == "warehouse unreachable"
        assert row[0] == 4
        for attempt, wait in enumerate(waits, start=1):
            ceiling = 2.0 * 2 ** (attempt - 1)
            assert ceiling / 2 <= wait <= ceiling
        assert len(delivery.claim("a", 5, 30)) == 0  # not due yet
        clock.tick(17)
        assert len(delivery.claim("a", 5, 30)) == 5
    assert 300 <= delivery.backoff.delay(29) <= 600  # the 30th retry: capped at 10 minutes


def test_dead_letter_listed_and_replayed(delivery: Delivery) -> None:
    fill(delivery.spool, make_events(20))
    batch = delivery.claim("a", 8, 30)
    assert delivery.dead("a", batch.seqs, "warehouse rejected the statement: [CAST_INVALID_INPUT] x") == 8
    assert len(delivery.claim("b", 100, 30)) == 12  # dead rows are not claimed
    status = delivery.status()
    assert status["dead"] == 8 and status["dead_reasons"] == [
        {"reason": "warehouse rejected the statement: [CAST_INVALID_INPUT] x", "count": 8}]
    assert delivery.retry_dead() == 8
    assert delivery.spool.counts()["dead"] == 0
    assert len(delivery.claim("c", 100, 30)) == 8


def test_unlease_returns_rows_without_an_attempt(delivery: Delivery) -> None:
    fill(delivery.spool, make_events(4))
    batch = delivery.claim("a", 4, 300)
    assert delivery.unlease("a", batch.seqs) == 4
    again = delivery.claim("b", 4, 300)
    assert again.seqs == batch.seqs and again.attempts == [0, 0, 0, 0]


def test_retention_purges_only_old_delivered_rows(delivery: Delivery) -> None:
    fill(delivery.spool, make_events(30))
    with freeze_time("2026-03-01 12:00:00") as clock:
        delivery.ack("a", delivery.claim("a", 10, 30).seqs)  # delivered on day 0
        clock.tick(timedelta(days=5))
        delivery.ack("a", delivery.claim("a", 10, 30).seqs)  # delivered on day 5
        clock.tick(timedelta(days=3))  # day 8
        assert delivery.purge(timedelta(days=7)) == 10
        assert delivery.spool.counts() == {"pending": 10, "delivered": 10, "dead": 0}
        clock.tick(timedelta(days=30))
        assert delivery.purge(timedelta(days=7)) == 10
        assert delivery.spool.counts() == {"pending": 10, "delivered": 0, "dead": 0}  # pending never purged


def test_size_cap_deletes_delivered_first_then_counts_undelivered(delivery: Delivery, caplog) -> None:
    fill(delivery.spool, make_events(20000))
    delivery.ack("a", delivery.claim("a", 5000, 30).seqs)
    full = delivery.used_bytes()
    # a cap that removing the delivered rows satisfies: no undelivered row is touched
    cap = int(full * 0.85)
    result = delivery.enforce_cap(cap)
    assert result.purged_delivered > 0 and result.dropped_undelivered == 0
    assert delivery.used_bytes() <= cap
    assert delivery.spool.counts()["pending"] == 15000
    # a cap below what the undelivered rows need: oldest undelivered go, counted and warned about
    cap = int(full * 0.4)
    with caplog.at_level(logging.WARNING):
        result = delivery.enforce_cap(cap)
    assert result.dropped_undelivered > 0 and delivery.used_bytes() <= cap
    assert delivery.spool.counts()["delivered"] == 0
    remaining = delivery.spool.connection().execute("SELECT MIN(seq) FROM events").fetchone()[0]
    assert remaining == 5001 + result.dropped_undelivered  # the oldest went first
    assert delivery.spool.counters()[CAP_COUNTER] == result.dropped_undelivered
    assert any("UNDELIVERED" in r.getMessage() for r in caplog.records)
    assert delivery.status()["dropped_cap"] == result.dropped_undelivered


def test_status_reports_age_dropped_and_last_results(delivery: Delivery) -> None:
    with freeze_time("2026-03-01 12:00:00") as clock:
        fill(delivery.spool, make_events(3, start=datetime(2026, 3, 1, 11, 0, 0)))
        delivery.spool.add_to_counter(DROPPED_COUNTER, 2)
        delivery.spool.add_to_counter(CAP_COUNTER, 5)
        delivery.record_error("warehouse unreachable (connection refused)")
        clock.tick(60)
        delivery.record_success(7)
        status = delivery.status()
    assert status["pending"] == 3 and status["due_now"] == 3 and status["leased"] == 0
    assert status["oldest_pending_at"] == "2026-03-01 11:00:00.000007"
    assert status["oldest_pending_age_s"] == pytest.approx(3660, abs=1)
    assert (status["dropped"], status["dropped_unwritable"], status["dropped_cap"]) == (7, 2, 5)
    assert status["last_success_at"] == "2026-03-01 12:01:00.000000" and status["last_delivered"] == 7
    assert status["last_error"] == "warehouse unreachable (connection refused)"
    assert status["last_error_at"] == "2026-03-01 12:00:00.000000"
