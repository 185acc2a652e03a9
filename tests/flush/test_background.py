"""The in-app background flusher: off unless configured, one per process, backs off while down, concurrent-safe."""

from __future__ import annotations

import threading
import time

import pytest

from fake_databricks import FakeWarehouse
from ctg_app.tracking.delivery import background
from ctg_app.tracking.delivery import cli as flush_cli
from ctg_app.tracking.delivery.background import BackgroundFlusher, start_background_flusher, stop_background_flusher
from tests.flush.conftest import fill, make_events, warehouse_ids


@pytest.fixture(autouse=True)
def _stop_flusher():
    yield
    stop_background_flusher()


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_off_by_default_and_without_a_warehouse(settings) -> None:
    assert start_background_flusher(settings) is None
    assert start_background_flusher(settings.replace(background_flush=True, databricks_connection_uri=None,
                                                     databricks_server_hostname=None)) is None


def test_one_per_process_delivers_and_stops(settings, spool, flush_env: FakeWarehouse) -> None:
    on = settings.replace(background_flush=True, background_flush_interval_s=0.1)
    first = start_background_flusher(on)
    assert first is not None and first.alive
    assert start_background_flusher(on) is first  # e.g. a Streamlit rerun
    events = make_events(500)
    fill(spool, events)
    assert _wait(lambda: spool.counts()["delivered"] == 500)
    stop_background_flusher()
    assert not first.alive
    assert sorted(warehouse_ids(flush_env)) == sorted(e[0] for e in events)


def test_backs_off_while_down_then_recovers(settings, spool, flush_env: FakeWarehouse) -> None:
    flush_env.stop()
    fill(spool, make_events(50))
    flusher = start_background_flusher(settings.replace(background_flush=True, background_flush_interval_s=0.2))
    assert _wait(lambda: flusher.failures >= 2)
    # the failure it counted is the report of a flush that did not deliver (not an exception it swallowed)
    assert flusher.last_report is not None and flusher.last_report.outcome == "unreachable"
    # and it backs off: after two failures its next pause is at least twice the healthy interval (0.4-0.8 s vs 0.2)
    assert flusher.next_delay() >= 2 * flusher.interval_s
    flush_env.start()
    flusher.flusher.delivery.spool.connection().execute("UPDATE events SET next_attempt_at = 0")  # skip row backoff
    assert _wait(lambda: spool.counts()["delivered"] == 50, timeout=30)
    assert _wait(lambda: flusher.failures == 0)


def test_runs_alongside_the_ops_command_without_duplicates(settings, spool, flush_env: FakeWarehouse) -> None:
    events = make_events(15000)
    fill(spool, events)
    start_background_flusher(settings.replace(background_flush=True, background_flush_interval_s=0.05,
                                              flush_batch_size=500))
    codes = []
    cli = threading.Thread(target=lambda: codes.append(flush_cli.main(["--batch-size", "500"])))
    cli.start()
    cli.join(60)
    assert _wait(lambda: spool.counts()["delivered"] == 15000, timeout=60)
    stop_background_flusher()
    assert codes == [0]
    ids = warehouse_ids(flush_env)
    assert len(ids) == len(set(ids)) == 15000
    assert background._current is None


@pytest.mark.parametrize(("failures", "low", "high"), [
    (0, 0.2, 0.2),  # healthy: the interval itself
    (1, 0.2, 0.4),  # doubled per failure, "equal jitter": half to all of it
    (3, 0.8, 1.6),
    (12, 300.0, 600.0),  # capped at 10 minutes
    (500, 300.0, 600.0),
])
def test_next_delay_doubles_per_failure_with_jitter_up_to_the_cap(settings, failures, low, high) -> None:
    flusher = BackgroundFlusher(settings, interval_s=0.2)  # not started: only the arithmetic
    flusher.failures = failures
    delays = [flusher.next_delay() for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    if low < high:
        assert max(delays) - min(delays) > (high - low) / 4  # jittered, not constant
