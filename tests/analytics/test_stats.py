"""get_usage_stats: offline, warehouse + pending spool rows without double counting, outage fallback, windows."""

from __future__ import annotations

from datetime import date

import pytest
from freezegun import freeze_time

from ctg_app.tracking import track_error, track_user_action_simple
from ctg_app.tracking.analytics.stats import get_usage_stats

from .conftest import load_spool, load_warehouse, make_events


def _expected(events, days_since: date, user=None):
    from ctg_app.settings import SPEC_APP_NAME

    rows = [e for e in events if e["app_name"] == SPEC_APP_NAME and e["timestamp"][:10] >= days_since.isoformat()
            and (user is None or e["user"] == user)]
    return rows


def test_offline_reads_the_spool(tracking_spool):
    with freeze_time("2025-05-05 10:00:00"):
        track_user_action_simple("Alice@Example.com ", "generate_question")
        track_user_action_simple("alice@example.com", "execute_sql")
        track_error("bob@example.com", "sql_error", "bad SQL")
        stats = get_usage_stats(days=7)
        alice = get_usage_stats("ALICE@example.com", days=7)
    assert stats.source == "spool" and stats.notice is None
    assert stats.total_events == 3 and stats.unique_users == 2 and stats.error_count == 1
    assert stats.errors_by_type == {"sql_error": 1}
    assert stats.active_days == 1
    assert stats.actions == {"execute_sql": 1, "generate_question": 1, "sql_error": 1}
    assert len(stats.daily) == 8 and stats.daily["events"].sum() == 3  # 7 previous days + today, zeros included
    assert alice.total_events == 2 and alice.user_email == "alice@example.com"
    assert str(stats.first_seen) == "2025-05-05 10:00:00"
    assert stats.as_dict()["daily"][-1] == {"date": "2025-05-05", "events": 3, "errors": 1, "active_users": 2}


def test_window_day_boundaries(tracking_spool):
    with freeze_time("2025-05-01 23:59:59.999999"):
        track_user_action_simple("a@x", "execute_sql")  # 7 days before 05-08: inside a days=7 window
    with freeze_time("2025-04-30 23:59:59.999999"):
        track_user_action_simple("b@x", "execute_sql")  # outside
    with freeze_time("2025-05-08 00:00:00"):
        track_user_action_simple("c@x", "execute_sql")
        stats = get_usage_stats(days=7)
    assert stats.since == date(2025, 5, 1)
    assert stats.total_events == 2 and stats.active_days == 2


def test_warehouse_plus_pending_without_double_counting(tracking_spool, warehouse_env):
    events = make_events(n=300)
    delivered, pending = events[:200], events[200:]
    already_there = pending[:5]  # flushed by a flush that died before marking the spool
    load_warehouse(warehouse_env, delivered + already_there)
    states = ["delivered"] * 200 + ["pending"] * (len(pending) - 10) + ["dead"] * 10
    load_spool(tracking_spool, events, states)
    stats = get_usage_stats(days=7)
    since = stats.since
    assert stats.source == "warehouse+spool"
    assert stats.total_events == len(_expected(events, since))
    assert stats.duplicates_skipped == len(_expected(already_there, since))
    assert stats.warehouse_events + stats.spool_events == stats.total_events
    # same numbers as the spool alone (which holds every event here)
    offline = get_usage_stats(days=7, settings=stats_settings_offline())
    assert offline.total_events == stats.total_events
    assert offline.actions == stats.actions
    assert offline.daily.equals(stats.daily)
    erin = get_usage_stats("erin@eleviogroup.com", days=7)
    assert erin.total_events == len(_expected(events, since, "erin@eleviogroup.com"))


def stats_settings_offline():
    from ctg_app.settings import get_settings

    return get_settings().replace(databricks_connection_uri=None, databricks_server_hostname=None,
                                  databricks_access_token=None)


def test_outage_falls_back_to_spool_with_notice(tracking_spool, warehouse_env):
    events = make_events(n=100)
    load_warehouse(warehouse_env, events[:50])
    load_spool(tracking_spool, events, ["delivered"] * 50 + ["pending"] * (len(events) - 50))
    warehouse_env.stop()
    stats = get_usage_stats(days=7)
    assert stats.source == "spool"
    assert "unavailable" in stats.notice and stats.warehouse_error
    assert stats.total_events == len(_expected(events, stats.since))


def test_wrong_token_is_reported_not_raised(tracking_spool, warehouse_env, monkeypatch):
    from ctg_app.settings import get_settings

    monkeypatch.setenv("DATABRICKS_ACCESS_TOKEN", "dapi-wrong")
    get_settings.cache_clear()
    track_user_action_simple("a@x", "execute_sql")
    stats = get_usage_stats()
    assert stats.source == "spool" and "401" in stats.warehouse_error
    assert "dapi-wrong" not in (stats.notice or "")


@pytest.mark.parametrize("days", [0, 1, 30])
def test_empty(tracking_spool, days):
    stats = get_usage_stats(days=days)
    assert stats.empty and stats.total_events == 0 and len(stats.daily) == days + 1


def test_source_spool_reads_only_the_spool_even_with_databricks_host_set(tracking_spool, warehouse_env, monkeypatch):
    # On Databricks Apps DATABRICKS_HOST is always set, so blanking the hostname in Settings did not force the spool;
    # source="spool" does, without opening a warehouse session.
    from ctg_app.settings import get_settings

    monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net")
    get_settings.cache_clear()
    events = make_events(n=50)
    load_warehouse(warehouse_env, events)
    load_spool(tracking_spool, events[:10])
    warehouse_env.reset_stats()
    stats = get_usage_stats(days=30, source="spool")
    assert stats.source == "spool" and stats.warehouse_events == 0
    assert stats.total_events == len(_expected(events[:10], stats.since))
    assert warehouse_env.method_counts.get("OpenSession", 0) == 0
    with pytest.raises(ValueError):
        get_usage_stats(days=7, source="everywhere")


def test_source_warehouse_raises_instead_of_falling_back(tracking_spool, warehouse_env):
    from ctg_app.tracking.analytics.reports import WarehouseUnavailable

    warehouse_env.stop()
    with pytest.raises(WarehouseUnavailable):
        get_usage_stats(days=7, source="warehouse")
    assert get_usage_stats(days=7).source == "spool"  # auto falls back
