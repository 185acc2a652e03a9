"""The Usage analytics page with AppTest: admins see it with charts, others cannot reach it; empty and outage states."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ctg_app.settings import get_settings

from .conftest import load_spool, load_warehouse, make_events

APP_PATH = Path(__file__).resolve().parents[2] / "ctg_app" / "app.py"


@pytest.fixture
def app_script():
    """The real entry point: the page is reached through ``app.py``'s navigation, as users reach it."""
    return str(APP_PATH)


@pytest.fixture
def admin(monkeypatch):
    monkeypatch.setenv("ADMIN_EMAILS", "boss@eleviogroup.com, test@example.com")
    get_settings.cache_clear()


def _open(app_script, email="test@example.com"):
    at = AppTest.from_file(app_script, default_timeout=30)
    at.user = {"email": email} if email else {}
    at.run()
    from ctg_app.ui import analytics

    at.switch_page(str(analytics.PAGE_PATH))
    at.run()
    return at


def test_admin_sees_charts(tracking_spool, admin, app_script):
    load_spool(tracking_spool, make_events(n=300))
    at = _open(app_script)
    assert not at.exception
    assert at.title[0].value == "Usage analytics"
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # DAU, actions, errors, funnel, durations
    assert any("Events" == m.label for m in at.metric)
    assert any(m.label == "Pending" for m in at.metric)  # tracker health
    at.selectbox(key="analytics_user").select("erin@eleviogroup.com").run()
    assert not at.exception and len(at.get("plotly_chart")) == 5


def test_non_admin_cannot_reach_the_page(tracking_spool, admin, app_script):
    at = AppTest.from_file(app_script, default_timeout=30)
    at.user = {"email": "someone@eleviogroup.com"}
    at.run()
    from ctg_app.ui import analytics

    with pytest.raises(ValueError):
        at.switch_page(str(analytics.PAGE_PATH))


def test_no_admins_configured_means_nobody(tracking_spool, app_script):
    at = AppTest.from_file(app_script, default_timeout=30)
    at.run()
    from ctg_app.ui import analytics

    with pytest.raises(ValueError):
        at.switch_page(str(analytics.PAGE_PATH))


def test_trusted_header_identity(tracking_spool, admin, app_script, monkeypatch):
    monkeypatch.setenv("TRUSTED_USER_HEADER", "X-Forwarded-Email")
    get_settings.cache_clear()
    monkeypatch.setattr("ctg_app.tracking.recording.identity.request_headers", lambda: {"X-Forwarded-Email": "Boss@EleVioGroup.com"})
    at = _open(app_script, email=None)
    assert at.title[0].value == "Usage analytics"


def test_empty_state_explains_itself(tracking_spool, admin, app_script, monkeypatch):
    from ctg_app.tracking.recording.tracker import get_tracker

    monkeypatch.setattr(get_tracker(), "enabled", False)  # app.py records app_start; here nothing is recorded yet
    at = _open(app_script)
    assert not at.exception
    assert any("No events yet" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 0


def test_warehouse_unreachable_shows_spool_with_notice(tracking_spool, admin, app_script, warehouse_env):
    events = make_events(n=200)
    load_warehouse(warehouse_env, events[:100])
    load_spool(tracking_spool, events, ["delivered"] * 100 + ["pending"] * (len(events) - 100))
    warehouse_env.stop()
    at = _open(app_script)
    assert not at.exception
    assert any("Warehouse unavailable" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 5


def test_warehouse_health_shows_row_count_and_size(tracking_spool, admin, app_script, warehouse_env):
    load_warehouse(warehouse_env, make_events(n=100))
    at = _open(app_script)
    assert not at.exception
    assert any("rows" in c.value and "DESCRIBE DETAIL" in c.value for c in at.caption)
