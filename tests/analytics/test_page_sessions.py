"""The usage page's cost on the warehouse: one session and a bounded number of statements per render, and a filter
change served from the short-lived cache. Measured on the real ``ctg_app/app.py`` against the fake warehouse."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from ctg_app.settings import get_settings

from .conftest import USERS, load_spool, load_warehouse, make_events
from .test_page import APP_PATH


def _render(warehouse):
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.user = {"email": "test@example.com"}
    at.run()
    from ctg_app.ui import analytics

    warehouse.reset_stats()
    at.switch_page(str(analytics.PAGE_PATH))
    at.run()
    return at


def test_one_session_per_render(tracking_spool, warehouse_env, monkeypatch):
    monkeypatch.setenv("ADMIN_EMAILS", "test@example.com")
    get_settings.cache_clear()
    events = make_events(n=200)
    load_warehouse(warehouse_env, events[:150])
    load_spool(tracking_spool, events, ["delivered"] * 150 + ["pending"] * (len(events) - 150))
    at = _render(warehouse_env)
    assert not at.exception
    assert len(at.get("plotly_chart")) == 5
    counts = warehouse_env.method_counts
    print("render:", counts.get("OpenSession", 0), "sessions,", counts.get("ExecuteStatement", 0), "statements")
    first = (counts.get("OpenSession", 0), counts.get("ExecuteStatement", 0))

    warehouse_env.reset_stats()
    at.selectbox(key="analytics_user").select(USERS[0]).run()
    assert not at.exception and len(at.get("plotly_chart")) == 5
    counts = warehouse_env.method_counts
    print("filter change:", counts.get("OpenSession", 0), "sessions,", counts.get("ExecuteStatement", 0), "statements")
    assert counts.get("OpenSession", 0) <= 1
    assert counts.get("ExecuteStatement", 0) <= 12
    assert first[0] == 1 and first[1] <= 12


def test_board_with_source_spool_never_touches_the_warehouse(tracking_spool, warehouse_env):
    from ctg_app.tracking.analytics.dashboard import Board, filter_choices, headline, report

    events = make_events(n=100)
    load_warehouse(warehouse_env, events)
    load_spool(tracking_spool, events[:40])
    warehouse_env.reset_stats()
    board = Board(get_settings(), source="spool")
    assert get_settings().warehouse_configured and board.source == "spool"
    users, actions = filter_choices(board)
    stats = headline(board, 30, None)
    dau = report(board, "daily_active_users", days=30, user=None, action=None)
    board.close()
    assert users and actions and stats.source == "spool" and dau.source == "spool"
    assert stats.total_events == len([e for e in events[:40] if e["app_name"] == get_settings().app_name
                                      and e["timestamp"][:10] >= stats.since.isoformat()])
    assert warehouse_env.method_counts.get("OpenSession", 0) == 0
