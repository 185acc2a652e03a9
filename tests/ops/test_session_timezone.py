"""Every warehouse connection pins the session time zone to UTC (issue 21). The fake warehouse here is configured
like a workspace whose SQL warehouse runs in America/Los_Angeles: without the pin DATE(timestamp) and the reports'
days follow that zone, not the spool's UTC days."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from databricks import sql
from fake_databricks import FakeWarehouse

from ctg_app.chatbot.data.source import DatabricksSource
from ctg_app.settings import SPEC_APP_NAME, SPEC_TABLE, Settings
from ctg_app.tracking.analytics.stats import get_usage_stats
from ctg_app.warehouse.connection import connect
from tests.analytics.conftest import load_warehouse, make_events

LATE_EVENING_LA = "2026-12-05 03:00:00+00:00"  # 19:00 on Dec 4 in Los Angeles, Dec 5 in UTC


@pytest.fixture
def wh():
    with FakeWarehouse(time_zone="America/Los_Angeles") as wh:
        wh.query("CREATE TABLE ctg.sample.moments (ts TIMESTAMP)")
        wh.query(f"INSERT INTO ctg.sample.moments VALUES (TIMESTAMP '{LATE_EVENING_LA}')")
        yield wh


def settings_for(wh: FakeWarehouse) -> Settings:
    return Settings.from_sources({**wh.env(), "CTG_DATA_SOURCE": "databricks", "CTG_DATA_SCHEMA": "ctg.sample",
                                  "WAREHOUSE_TIMEOUT_S": "3"})


def test_the_fake_honours_the_warehouse_time_zone(wh) -> None:
    """The control: a plain connection (no pin) sees the Los Angeles day and a -08:00 value."""
    with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:
        cur.execute("SELECT DATE(ts), ts FROM ctg.sample.moments")
        day, moment = cur.fetchone()
        assert day == dt.date(2026, 12, 4) and moment.utcoffset() == dt.timedelta(hours=-8)
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SELECT DATE(ts) FROM ctg.sample.moments")
        assert cur.fetchone()[0] == dt.date(2026, 12, 5)


def test_every_connection_is_pinned_to_utc(wh) -> None:
    settings = settings_for(wh)
    with connect(settings) as conn, conn.cursor() as cur:  # the flusher's, the reports' and selftest's connection
        cur.execute("SELECT DATE(ts), ts FROM ctg.sample.moments")
        day, moment = cur.fetchone()
    assert day == dt.date(2026, 12, 5)
    assert moment == dt.datetime(2026, 12, 5, 3, tzinfo=dt.timezone.utc) and moment.utcoffset() == dt.timedelta(0)
    frame = DatabricksSource(settings).run_sql("SELECT DATE(ts) AS d FROM moments")  # chat SQL, with its own timeout
    assert frame["d"].tolist() == [dt.date(2026, 12, 5)]


def test_daily_usage_from_the_warehouse_uses_utc_days(wh) -> None:
    now = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.timezone.utc)
    events = make_events(now, n=300)
    load_warehouse(wh, events, SPEC_TABLE)
    stats = get_usage_stats(None, 7, settings=settings_for(wh), source="warehouse", now=now)
    since = (now - dt.timedelta(days=7)).date()
    expected = Counter(e["timestamp"][:10] for e in events
                       if e["app_name"] == SPEC_APP_NAME and e["timestamp"][:10] >= since.isoformat())
    got = {row["date"].isoformat(): int(row["events"]) for row in stats.daily.to_dict(orient="records")
           if row["events"]}
    assert got == dict(expected)

