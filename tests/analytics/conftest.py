"""Shared helpers: one set of events loaded into a spool and into the fake warehouse's central table."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from ctg_app.settings import SPEC_APP_NAME, SPEC_TABLE, get_settings
from ctg_app.tracking.recording.event import EVENT_COLUMNS
from ctg_app.tracking.delivery.databricks_sink import create_table_sql
from ctg_app.tracking.recording.spool import Spool

ACTIONS = ["generate_question", "sql_query", "execute_sql", "download_results", "edit_sql", "generate_chart",
           "app_start", "sql_error", "llm_error", "chart_error", "app_error", "view_random_questions"]
USERS = ["alice@eleviogroup.com", "bob@eleviogroup.com", "carol@eleviogroup.com", "dave@eleviogroup.com"]


def ts_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def make_events(now: datetime | None = None, n: int = 600, seed: int = 7) -> list[dict]:
    """Events over the last ~12 days (relative to ``now``, UTC), with day-boundary instants, errors, durations,
    ties, another app's rows and an upper-case action."""
    now = (now or datetime.now(timezone.utc)).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rnd = random.Random(seed)
    events = []

    def add(moment: datetime, user: str, action: str, *, app: str = SPEC_APP_NAME, duration: float | None = None,
            operation: str | None = None) -> None:
        error = action.endswith("_error")
        events.append({
            "event_id": f"{len(events):08d}-0000-7000-8000-{rnd.getrandbits(48):012x}",
            "timestamp": ts_text(moment), "app_name": app, "user": user, "action": action,
            "operation": operation if operation is not None else ({"sql_error": "execute_sql", "llm_error": "sql_query",
                                                                   "chart_error": "generate_chart"}.get(action)
                                                                  if error else action),
            "status": "error" if error else "ok", "error_type": "RuntimeError" if error else None,
            "error_message": "boom" if error else None,
            "duration_ms": duration if duration is not None else round(rnd.uniform(1, 2000), 3),
            # a session per user and six hours (the sessions, retention and funnel reports need them)
            "session_id": f"{user}-{moment:%Y%m%d}-{moment.hour // 6}", "details": "{}",
        })

    for _ in range(n):
        moment = now - timedelta(seconds=rnd.uniform(0, 12 * 86400))
        add(moment, rnd.choice(USERS), rnd.choice(ACTIONS))
    # exact day boundaries: 23:59:59.999999 belongs to the earlier day, 00:00:00 to the later one
    for k in (1, 2, 7, 8):
        boundary = today - timedelta(days=k - 1)
        add(boundary - timedelta(microseconds=1), "erin@eleviogroup.com", "sql_error")
        add(boundary, "erin@eleviogroup.com", "execute_sql", duration=100.0)
    add(now - timedelta(hours=1), "frank@eleviogroup.com", "SQL_ERROR_UPPER", operation=None)  # LIKE case
    add(now - timedelta(hours=2), "alice@eleviogroup.com", "execute_sql", app="some-other-app")
    add(now - timedelta(hours=3), "alice@eleviogroup.com", "execute_sql", duration=None)
    events[-1]["duration_ms"] = None
    return events


def make_conversations(now: datetime | None = None) -> list[dict]:
    """Chat sessions as the chat records them: questions (with their text), answers (one declined), runs, a chart,
    a download, an edit, a suggestion list and 👍 / 👎 votes (one changed from 👍 to 👎), over the last few days."""
    now = (now or datetime.now(timezone.utc)).replace(tzinfo=None)
    events: list[dict] = []

    def add(session: str, user: str, moment: datetime, action: str, details: dict | None = None,
            status: str = "ok") -> None:
        events.append({
            "event_id": f"conv-{len(events):06d}", "timestamp": ts_text(moment), "app_name": SPEC_APP_NAME,
            "user": user, "action": action, "operation": action, "status": status, "error_type": None,
            "error_message": None, "duration_ms": 10.0, "session_id": session, "details": json.dumps(details or {}),
        })

    t = now - timedelta(days=2, hours=1)
    s1, u1 = "conv-s1", "alice@eleviogroup.com"
    add(s1, u1, t, "app_start")
    add(s1, u1, t + timedelta(seconds=5), "generate_question", {"question": "How many projects are there?"})  # turn 1
    add(s1, u1, t + timedelta(seconds=6), "sql_query", {"declined": False, "intent": "project_count"})
    add(s1, u1, t + timedelta(seconds=8), "execute_sql", {"rows": 1, "columns": 1})
    add(s1, u1, t + timedelta(seconds=20), "download_results", {"rows": 1, "columns": 1})
    add(s1, u1, t + timedelta(seconds=30), "generate_question", {"question": "Which projects will overrun?"})  # 2
    add(s1, u1, t + timedelta(seconds=31), "sql_query", {"declined": True, "score": 0.0})
    add(s1, u1, t + timedelta(seconds=40), "view_random_questions", {"shown": 5})  # turn 3
    add(s1, u1, t + timedelta(seconds=50), "generate_question", {"question": "Total budget per business unit?"})  # 4
    add(s1, u1, t + timedelta(seconds=51), "sql_query", {"declined": False, "intent": "budget_by_unit"})
    add(s1, u1, t + timedelta(seconds=53), "execute_sql", {"rows": 3, "columns": 2})
    add(s1, u1, t + timedelta(seconds=60), "answer_feedback", {"helpful": True, "turn": 4, "intent": "budget_by_unit"})
    add(s1, u1, t + timedelta(seconds=65), "answer_feedback", {"helpful": False, "turn": 4, "intent": "budget_by_unit",
                                                               "reason": "Wrong numbers"})
    add(s1, u1, t + timedelta(seconds=70), "answer_feedback", {"helpful": False, "turn": 1, "intent": "project_count",
                                                               "comment": "counts closed ones too"})
    t2 = now - timedelta(days=1, hours=2)
    s2, u2 = "conv-s2", "bob@eleviogroup.com"
    add(s2, u2, t2, "generate_question", {"question": "What is the cost to go per project?"})  # turn 1
    add(s2, u2, t2 + timedelta(seconds=2), "sql_query", {"declined": False, "intent": "ctg_per_project"})
    add(s2, u2, t2 + timedelta(seconds=4), "execute_sql", {"rows": 12, "columns": 3})
    add(s2, u2, t2 + timedelta(seconds=9), "edit_sql", {"rows": 12, "columns": 3})  # turn 2
    add(s2, u2, t2 + timedelta(seconds=15), "generate_chart")
    add(s2, u2, t2 + timedelta(seconds=25), "answer_feedback", {"helpful": True, "turn": 1})
    t3 = now - timedelta(hours=3)
    s3, u3 = "conv-s3", "carol@eleviogroup.com"
    add(s3, u3, t3, "generate_question", {"question": "Show me the weather"})
    add(s3, u3, t3 + timedelta(seconds=1), "sql_query", {"declined": True, "score": 0.0})
    return events


def load_spool(spool: Spool, events: list[dict], states: list[str] | None = None) -> None:
    columns = (*EVENT_COLUMNS, "state")
    sql = f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    rows = [tuple(e[c] for c in EVENT_COLUMNS) + ((states[i] if states else "pending"),) for i, e in enumerate(events)]
    with spool.transaction() as conn:
        conn.executemany(sql, rows)


def load_warehouse(wh, events: list[dict], table: str = SPEC_TABLE) -> None:
    wh.query(create_table_sql(table))
    if not events:
        return
    frame = pd.DataFrame(events, columns=list(EVENT_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["duration_ms"] = frame["duration_ms"].astype("float64")
    wh.load_dataframe(table, frame)


@pytest.fixture
def warehouse_env(fake_warehouse, monkeypatch):
    """The in-process fake warehouse with its variables set and the settings re-read."""
    for key, value in fake_warehouse.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "2")
    get_settings.cache_clear()
    yield fake_warehouse
    get_settings.cache_clear()
