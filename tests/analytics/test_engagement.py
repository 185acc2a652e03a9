"""Sessions, active users, retention, new/returning users, the ordered session funnel, the app comparison, the
declined / 👎 list and promotion into the training file: hand-checked answers, the same on both engines."""

from __future__ import annotations

import json
import tomllib
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from freezegun import freeze_time

from ctg_app.settings import SPEC_APP_NAME, get_settings
from ctg_app.chatbot.data.promote import PromotionError, promote_to_training
from ctg_app.tracking.analytics.reports import ALL_APPS, REPORTS, WarehouseReader, run_on_spool, run_on_warehouse

from .conftest import load_spool, load_warehouse, make_conversations, make_events, ts_text

NEW_REPORTS = ("sessions", "active_users", "retention", "new_returning", "session_funnel", "app_comparison",
               "problem_questions")


def _event(i: int, moment: datetime, user: str, action: str, *, session: str | None = None, app: str = SPEC_APP_NAME,
           details: dict | None = None) -> dict:
    return {"event_id": f"e-{i:05d}", "timestamp": ts_text(moment), "app_name": app, "user": user, "action": action,
            "operation": action, "status": "ok", "error_type": None, "error_message": None, "duration_ms": 1.0,
            "session_id": session, "details": json.dumps(details or {})}


@pytest.fixture
def conversations(tracking_spool, warehouse_env):
    events = make_conversations() + make_events(n=150)
    load_spool(tracking_spool, events)
    load_warehouse(warehouse_env, events)
    reader = WarehouseReader(get_settings())
    yield tracking_spool, reader
    reader.close()


@pytest.mark.parametrize("name", NEW_REPORTS)
@pytest.mark.parametrize("app", [None, ALL_APPS, "some-other-app"])
def test_new_reports_agree_on_both_engines_for_any_app(conversations, name, app):
    spool, reader = conversations
    on_spool = run_on_spool(name, spool, app_name=app)
    pd.testing.assert_frame_equal(on_spool, run_on_warehouse(name, reader, app_name=app), check_dtype=False)
    assert list(on_spool.columns) == list(REPORTS[name].columns)
    if app is None:
        assert not on_spool.empty


def test_problem_questions_lists_declines_and_last_thumbs_down(conversations):
    spool, reader = conversations
    frame = run_on_warehouse("problem_questions", reader)
    rows = {(r["kind"], r["question"]) for r in frame.to_dict(orient="records")}
    assert rows == {("declined", "Which projects will overrun?"), ("declined", "Show me the weather"),
                    ("unhelpful", "Total budget per business unit?"),  # 👍 changed to 👎 on turn 4
                    ("unhelpful", "How many projects are there?")}  # voted on turn 1 after later turns
    budget = frame[frame["question"] == "Total budget per business unit?"].iloc[0]
    assert budget["reason"] == "Wrong numbers" and budget["user"] == "alice@eleviogroup.com"
    assert frame["timestamp"].is_monotonic_decreasing


def test_session_funnel_is_ordered_within_a_session(tracking_spool):
    now = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=1)
    steps = ["generate_question", "sql_query", "execute_sql", "download_results"]
    events = [_event(i, now + timedelta(seconds=10 * i), "a@x", a, session="in-order") for i, a in enumerate(steps)]
    # the same actions backwards: the unordered per-user funnel counts this user at every step, the session one not
    events += [_event(10 + i, now + timedelta(seconds=10 * i), "b@x", a, session="backwards")
               for i, a in enumerate(reversed(steps))]
    events += [_event(20, now, "c@x", "generate_question", session="chart"),
               _event(21, now + timedelta(seconds=1), "c@x", "sql_query", session="chart"),
               _event(22, now + timedelta(seconds=2), "c@x", "execute_sql", session="chart"),
               _event(23, now + timedelta(seconds=50), "c@x", "generate_chart", session="chart")]
    load_spool(tracking_spool, events)
    frame = run_on_spool("session_funnel", tracking_spool)
    assert frame["sessions"].tolist() == [3, 2, 2, 2]
    assert frame["conversion_from_start"].tolist() == [1.0, round(2 / 3, 4), round(2 / 3, 4), round(2 / 3, 4)]
    assert frame["p50_seconds_from_question"].tolist() == [0.0, 1.0, 2.0, 30.0]  # 30 s and 50 s: nearest rank
    assert run_on_spool("funnel", tracking_spool)["users"].tolist() == [3, 3, 3, 2]  # the old one is fooled


def test_sessions_count_duration_and_questions(tracking_spool):
    start = datetime.now(timezone.utc).replace(tzinfo=None, hour=1, minute=0, second=0, microsecond=0)
    events = [_event(0, start, "a@x", "app_start", session="s1"),
              _event(1, start + timedelta(seconds=30), "a@x", "generate_question", session="s1"),
              _event(2, start + timedelta(seconds=90), "a@x", "generate_question", session="s1"),
              _event(3, start + timedelta(seconds=10), "b@x", "generate_question", session="s2"),
              _event(4, start + timedelta(seconds=40), "b@x", "execute_sql", session="s2"),
              _event(5, start, "b@x", "generate_question")]  # no session id: not a session
    load_spool(tracking_spool, events)
    frame = run_on_spool("sessions", tracking_spool, days=0)
    assert frame.to_dict(orient="records") == [{
        "date": start.date(), "sessions": 2, "avg_duration_s": 60.0, "p50_duration_s": 30.0, "questions": 3,
        "questions_per_session": 1.5}]


def test_wau_mau_stickiness_retention_and_new_users(tracking_spool):
    days = {"a@x": ["2025-03-03", "2025-03-10", "2025-03-11"], "b@x": ["2025-03-10"], "c@x": ["2025-02-09"]}
    events = [_event(i, datetime.fromisoformat(f"{d} 12:00:00"), u, "execute_sql", session=f"{u}{d}")
              for i, (u, d) in enumerate((u, d) for u, ds in days.items() for d in ds)]
    load_spool(tracking_spool, events)
    with freeze_time("2025-03-11 18:00:00"):
        active = run_on_spool("active_users", tracking_spool, days=1).set_index("date")
        assert active.loc[date(2025, 3, 11)].tolist() == [1, 2, 2, 0.5]  # dau, wau (a, b), mau (c: 30 days back)
        assert active.loc[date(2025, 3, 10)].tolist() == [2, 2, 3, 0.6667]  # c 29 days back: in the MAU
        new = run_on_spool("new_returning", tracking_spool, days=8).set_index("date")
        assert new.loc[date(2025, 3, 10)].tolist() == [2, 1, 1]  # b new, a returning
        assert new.loc[date(2025, 3, 3)].tolist() == [1, 1, 0]  # a's first day ever, although c came earlier
        cohorts = run_on_spool("retention", tracking_spool, days=28)
    march = cohorts[cohorts["cohort_week"] == date(2025, 3, 3)]
    assert march[["weeks_since", "cohort_users", "active_users"]].values.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert date(2025, 2, 3) not in set(cohorts["cohort_week"])  # c's cohort began before the window's first week
    assert cohorts[cohorts["cohort_week"] == date(2025, 3, 10)]["cohort_users"].tolist() == [1]  # b only


def test_app_comparison_and_app_filter(tracking_spool):
    now = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=1)
    events = [_event(0, now, "a@x", "generate_question", session="1"),
              _event(1, now, "b@x", "execute_sql", session="2"),
              _event(2, now, "a@x", "generate_question", session="3", app="other-app")]
    load_spool(tracking_spool, events)
    apps = run_on_spool("app_comparison", tracking_spool)
    assert apps[["app_name", "events", "users", "questions"]].values.tolist() == [
        [SPEC_APP_NAME, 2, 2, 1], ["other-app", 1, 1, 1]]
    assert run_on_spool("popular_actions", tracking_spool, app_name="other-app")["count"].tolist() == [1]
    assert run_on_spool("popular_actions", tracking_spool, app_name=ALL_APPS)["count"].sum() == 3
    assert run_on_spool("popular_actions", tracking_spool)["count"].sum() == 2  # this app's by default


def test_promote_appends_a_validated_pair(tmp_path):
    from ctg_app.chatbot.data.training import TRAINING_FILE, load_training

    path = tmp_path / "training.toml"
    path.write_text(TRAINING_FILE.read_text())
    before = len(load_training(path).examples)
    sql = "SELECT project_code, project_name\nFROM projects WHERE status = 'On Hold' ORDER BY project_code"
    done = promote_to_training("  Which projects are paused? ", sql, path)
    examples = load_training(path).examples
    assert len(examples) == before + 1 == done.examples
    assert (examples[-1].question, examples[-1].sql) == ("Which projects are paused?", sql)
    assert tomllib.loads(path.read_text())["ddl"] == tomllib.loads(TRAINING_FILE.read_text())["ddl"]
    for question, bad, why in [("Which projects are paused?", "SELECT 1", "already has"),
                               ("Drop it", "DROP TABLE projects", "refused"),
                               ("Usage?", "SELECT * FROM central_app_usage", "refused"),
                               ("Unknown column", "SELECT budget FROM projects", "unknown column"),
                               ("", "SELECT 1", "empty")]:
        with pytest.raises(PromotionError, match=why):
            promote_to_training(question, bad, path)
    assert len(load_training(path).examples) == before + 1  # nothing refused was written
