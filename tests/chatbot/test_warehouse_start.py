"""A chat query that meets a starting SQL warehouse (HTTP 503 with Retry-After from the fake, through the real
connector): it waits up to WAREHOUSE_START_TIMEOUT_S, reports the elapsed time, and is recorded as ONE event."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ctg_app.ui import operations
from ctg_app.chatbot.data import source as data_source
from ctg_app.chatbot.data.source import WarehouseStartTimeout, make_data_source, reporting_warehouse_start
from ctg_app.ui.warehouse_status import LABEL, start_timeout_message
from ctg_app.settings import reload_settings

from .conftest import serve_sample_from_warehouse
from ctg_app.tracking import reset_tracker

SQL = "SELECT country, COUNT(*) AS n FROM customers GROUP BY country"


class Vn:
    """What ``operations.execute_sql`` needs of the assistant: ``run`` and a cache key."""

    def __init__(self, source) -> None:
        self.run = source.run_sql
        self.cache_key = f"warehouse-start-{id(source)}"


@pytest.fixture
def starting(fake_warehouse, tracking_spool, monkeypatch: pytest.MonkeyPatch):
    """The sample tables in the fake; the app on it with a short connector timeout (each 503 fails fast)."""
    wh = fake_warehouse
    serve_sample_from_warehouse(wh, monkeypatch, timeout_s=2)
    monkeypatch.setenv("WAREHOUSE_START_TIMEOUT_S", "30")
    monkeypatch.setattr(data_source, "START_POLL_S", 0.5)
    reload_settings()
    reset_tracker()
    operations.clear_caches()
    yield wh, tracking_spool
    operations.clear_caches()
    reload_settings()


class VirtualTime:
    """The data source's clock and sleep (its ``time`` module): sleeping moves the clock on at once, so the waits
    for a starting warehouse are counted on the code's own clock, not spent in wall time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    virtual = VirtualTime()
    monkeypatch.setattr(data_source, "time", virtual)
    return virtual


def _events(spool) -> list[tuple[str, str]]:
    return [(row["action"], row["status"]) for row in spool.rows()]


def test_a_starting_warehouse_is_waited_for_and_the_query_recorded_once(starting, clock) -> None:
    wh, spool = starting
    wh.faults.next(4, http_status=503, retry_after=1)  # the warehouse answers 503 four times, then it is up
    waits: list[float] = []
    with reporting_warehouse_start(waits.append):
        df = operations.execute_sql(Vn(make_data_source()), SQL)
    assert len(df) == 7 and list(df.columns) == ["country", "n"]
    assert wh.faults.pending == 0 and len(wh.faults.hits) == 4  # every 503 was met, none was skipped
    assert clock.slept == [0.5] * 4  # one START_POLL_S pause after each 503, then the query ran
    assert waits == sorted(waits) and waits[-1] == sum(clock.slept)  # the elapsed time shown is the time waited
    assert _events(spool) == [("execute_sql", "ok")]


def test_a_warehouse_that_does_not_start_in_time_gives_a_clear_message_recorded_once(starting, clock,
                                                                                    monkeypatch) -> None:
    wh, spool = starting
    monkeypatch.setenv("WAREHOUSE_START_TIMEOUT_S", "3")
    reload_settings()
    wh.faults.next(10_000, http_status=503, retry_after=1)
    waits: list[float] = []
    with reporting_warehouse_start(waits.append), pytest.raises(WarehouseStartTimeout) as info:
        operations.execute_sql(Vn(make_data_source()), SQL)
    # It waited its whole WAREHOUSE_START_TIMEOUT_S on its own clock, in START_POLL_S pauses, and asked again after
    # each one (the connector's own time per 503 is not part of the count).
    assert clock.slept == [0.5] * 6
    assert len(wh.faults.hits) == len(clock.slept) + 1
    assert "still starting after 3 s" in str(info.value) and "WAREHOUSE_START_TIMEOUT_S" in str(info.value)
    assert start_timeout_message(info.value) == str(info.value)
    assert waits == sorted(waits) and max(waits) == 3.0  # the progress shown reached the whole wait
    assert _events(spool) == [("database_error", "error")]
    assert spool.rows()[0]["error_type"] == "WarehouseStartTimeout"


def test_an_unreachable_warehouse_is_not_waited_for(starting, clock) -> None:
    wh, spool = starting
    wh.stop()
    waits: list[float] = []
    with reporting_warehouse_start(waits.append), pytest.raises(Exception) as info:  # noqa: B017
        operations.execute_sql(Vn(make_data_source()), SQL)
    assert not isinstance(info.value, WarehouseStartTimeout)
    assert clock.slept == [] and waits == []
    assert _events(spool) == [("database_error", "error")]


def _status_page() -> None:
    import streamlit as st

    from ctg_app.ui import operations
    from ctg_app.chatbot.data.source import make_data_source
    from ctg_app.ui.warehouse_status import warehouse_start_status

    class Vn:
        run = make_data_source().run_sql
        cache_key = "status-page"

    with warehouse_start_status():
        df = operations.execute_sql(Vn(), "SELECT country, COUNT(*) AS n FROM customers GROUP BY country")
    st.write(f"{len(df)} rows")


def test_the_page_shows_starting_the_sql_warehouse_with_the_elapsed_time_and_nothing_once_cached(starting) -> None:
    wh, spool = starting
    wh.faults.next(3, http_status=503, retry_after=1)
    at = AppTest.from_function(_status_page, default_timeout=60).run()
    assert not at.exception
    [status] = at.status
    assert status.state == "complete" and status.label.startswith("SQL warehouse started (")
    assert any("Waiting for the SQL warehouse to start:" in m.value and "s so far" in m.value for m in at.markdown)
    assert any(m.value == "7 rows" for m in at.markdown)
    at.run()  # the cached result: no stale "Starting the SQL warehouse…" replayed from the cache
    assert not at.exception and not at.status and any(m.value == "7 rows" for m in at.markdown)
    assert LABEL == "Starting the SQL warehouse…"


def test_a_ready_warehouse_shows_no_status(starting) -> None:
    at = AppTest.from_function(_status_page, default_timeout=60).run()
    assert not at.exception and not at.status
    assert any(m.value == "7 rows" for m in at.markdown)
