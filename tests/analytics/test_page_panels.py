"""The usage page's on-demand panels (engagement, apps compared, declined / 👎 questions with promote to training),
the pending-events wording and the "Last flush" tile, on the real app in AppTest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from streamlit.testing.v1 import AppTest

from ctg_app.settings import get_settings
from ctg_app.tracking.delivery.leases import META_LAST_SUCCESS

from .conftest import load_spool, load_warehouse, make_conversations, make_events
from .test_page import APP_PATH


def _open(monkeypatch):
    monkeypatch.setenv("ADMIN_EMAILS", "test@example.com")
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.user = {"email": "test@example.com"}
    at.run()
    from ctg_app.ui import analytics

    at.switch_page(str(analytics.PAGE_PATH))
    at.run()
    return at


def _texts(at) -> list[str]:
    return [e.value for kind in ("caption", "info", "warning", "markdown") for e in at.get(kind)]


def test_pending_events_are_said_to_be_included_where_they_are(tracking_spool, warehouse_env, monkeypatch):
    events = make_events(n=200)
    load_warehouse(warehouse_env, events[:150])
    load_spool(tracking_spool, events, ["delivered"] * 150 + ["pending"] * (len(events) - 150))
    at = _open(monkeypatch)
    assert not at.exception
    ours = [e for e in events if e["app_name"] == get_settings().app_name]
    shown = next(m for m in at.metric if m.label == "Events").value
    texts = _texts(at)
    from ctg_app.tracking.analytics.stats import get_usage_stats

    stats = get_usage_stats(days=7)  # what the tiles show: the delivered rows plus the window's pending ones
    pending = stats.spool_events
    assert pending > 0 and int(shown.replace(",", "")) == stats.total_events
    note = [t for t in texts if "pending" in t and "Events count" in t]
    assert note and f"includes {pending} pending events" in note[0], texts
    assert not any("not included" in t for t in texts), texts  # the old banner said so next to a count including them
    assert int(shown.replace(",", "")) <= len(ours)


def test_last_flush_tile_is_short_with_the_full_time_in_its_help(tracking_spool, monkeypatch):
    load_spool(tracking_spool, make_events(n=50))
    moment = (datetime.now(timezone.utc) - timedelta(minutes=12)).strftime("%Y-%m-%d %H:%M:%S.%f")
    tracking_spool.set_meta(META_LAST_SUCCESS, moment)
    at = _open(monkeypatch)
    tile = next(m for m in at.metric if m.label == "Last flush")
    assert tile.value in ("12 min ago", "13 min ago")  # fits a fifth of the page; the ISO time was cut off
    assert moment in tile.proto.help


def test_on_demand_panels_open_and_promote_writes_the_training_file(tracking_spool, monkeypatch, tmp_path):
    from ctg_app.chatbot.data.training import TRAINING_FILE, load_training
    from ctg_app.chatbot.data import promote

    training = tmp_path / "training.toml"
    training.write_text(TRAINING_FILE.read_text())
    monkeypatch.setattr(promote, "TRAINING_FILE", training)
    load_spool(tracking_spool, make_events(n=150) + make_conversations())
    at = _open(monkeypatch)
    closed = len(at.get("plotly_chart"))
    at.toggle(key="analytics_engagement").set_value(True).run()
    assert not at.exception
    keys = {c.key for c in at.get("plotly_chart")}
    assert len(at.get("plotly_chart")) == closed + 4
    assert {"chart_active_users", "chart_new_returning", "chart_sessions", "chart_session_funnel"} <= keys
    assert any(m.label == "Questions / session" for m in at.metric)
    at.selectbox(key="analytics_app").select("All apps").run()
    assert not at.exception
    at.toggle(key="analytics_apps").set_value(True).run()
    assert not at.exception
    at.toggle(key="analytics_problems").set_value(True).run()
    assert not at.exception
    review = at.selectbox(key="analytics_review")
    label = next(o for o in review.options if "Which projects will overrun?" in o)
    review.select(review.options.index(label) if isinstance(review.value, int) else label).run()
    at.text_area[0].input("SELECT project_code, project_name FROM projects WHERE status = 'Active'")
    submit = next(b for b in at.button if b.label == "Promote to training")
    submit.click().run()
    assert not at.exception
    assert any("Promoted to training.toml" in s.value for s in at.success), [e.value for e in at.error]
    last = load_training(training).examples[-1]
    assert last.question == "Which projects will overrun?" and "status = 'Active'" in last.sql
