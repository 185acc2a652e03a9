"""The dashboard's datasets and the alerts' queries, run over the wire (the real connector) on the fake warehouse's
central table, give the figures computed independently from the same events: the dashboard shows what happened and
each alert triggers exactly when it should."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from ctg_app.settings import SPEC_APP_NAME, SPEC_TABLE, get_settings, reload_settings
from ctg_app.tracking.analytics.reports import WarehouseReader
from ctg_app.tracking.delivery.databricks_sink import create_table_sql
from ctg_app.tracking.recording.event import EVENT_COLUMNS

from .bundle import REFERENCE, load_bundle

BUNDLE = load_bundle()
CATALOG, SCHEMA, TABLE = SPEC_TABLE.split(".")


def _event(moment: datetime, action: str, user: str = "alice@eleviogroup.com", *, app: str = SPEC_APP_NAME,
           duration: float | None = 100.0) -> dict:
    error = action.endswith("_error")
    return {"event_id": str(uuid.uuid4()), "timestamp": moment.strftime("%Y-%m-%d %H:%M:%S.%f"), "app_name": app,
            "user": user, "action": action, "operation": action, "status": "error" if error else "ok",
            "error_type": "RuntimeError" if error else None, "error_message": "boom" if error else None,
            "duration_ms": duration, "session_id": None, "details": "{}"}


def make_events(now: datetime) -> list[dict]:
    """10 minutes ago: 3 executions and 1 SQL error by two users (error rate 0.25 in the last hour); 2 hours ago: 5
    LLM errors (outside the hour); another app's errors (never counted); and older days' traffic."""
    recent = now - timedelta(minutes=10)
    events = [_event(recent, "execute_sql", duration=d) for d in (100.0, 200.0, 300.0)]
    events.append(_event(recent, "sql_error", "bob@eleviogroup.com", duration=None))
    events += [_event(now - timedelta(hours=2), "llm_error", "bob@eleviogroup.com") for _ in range(5)]
    events += [_event(recent, "sql_error", app="some-other-app") for _ in range(10)]
    for days in (1, 3, 5, 9, 20):
        moment = now - timedelta(days=days, hours=3)
        events += [_event(moment, "generate_question", f"user{days}@eleviogroup.com") for _ in range(days)]
        events.append(_event(moment, "chart_error", f"user{days}@eleviogroup.com"))
    return events


@pytest.fixture
def reader(fake_warehouse, monkeypatch):
    for key, value in fake_warehouse.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "5")
    reload_settings()
    fake_warehouse.query(create_table_sql(SPEC_TABLE))

    def load(events: list[dict]) -> None:
        if events:
            frame = pd.DataFrame(events, columns=list(EVENT_COLUMNS))
            frame["timestamp"] = pd.to_datetime(frame["timestamp"])
            frame["duration_ms"] = frame["duration_ms"].astype("float64")
            fake_warehouse.load_dataframe(SPEC_TABLE, frame)

    with WarehouseReader(get_settings()) as r:
        r.load = load
        yield r
    reload_settings()


def dataset_sql(name: str) -> str:
    """A dashboard dataset's query as the warehouse runs it: unqualified table names resolve in the dashboard's
    dataset_catalog.dataset_schema (the prod target's: the spec's table)."""
    dashboard = BUNDLE.resources["dashboards"]["ctg_app_usage"]
    catalog = REFERENCE.sub(lambda m: str(BUNDLE.default(m.group(1)[4:], "prod")), dashboard["dataset_catalog"])
    schema = REFERENCE.sub(lambda m: str(BUNDLE.default(m.group(1)[4:], "prod")), dashboard["dataset_schema"])
    path = BUNDLE.declared_in[("dashboards", "ctg_app_usage")].parent / dashboard["file_path"]
    datasets = {d["name"]: "".join(d["queryLines"]) for d in json.loads(path.read_text())["datasets"]}
    tree = sqlglot.parse_one(datasets[name], read="databricks")
    for table in tree.find_all(exp.Table):
        if not table.db:
            table.set("db", exp.to_identifier(schema))
            table.set("catalog", exp.to_identifier(catalog))
    return tree.sql(dialect="databricks")


def alert_sql(key: str) -> str:
    return REFERENCE.sub(lambda m: str(BUNDLE.default(m.group(1)[4:], "prod")),
                         BUNDLE.resources["alerts"][key]["query_text"])


def run(reader, sql: str) -> pd.DataFrame:
    names, rows = reader.fetch(sql)
    return pd.DataFrame(rows, columns=names)


def triggers(key: str, frame: pd.DataFrame) -> bool:
    """The alert's evaluation applied to its result, as Databricks SQL alerts (v2) evaluate the first row."""
    evaluation = BUNDLE.resources["alerts"][key]["evaluation"]
    if frame.empty:
        return evaluation.get("empty_result_state") == "TRIGGERED"
    value, threshold = float(frame.iloc[0][evaluation["source"]["name"]]), evaluation["threshold"]["value"]["double_value"]
    return {"GREATER_THAN": value > threshold, "LESS_THAN": value < threshold}[evaluation["comparison_operator"]]


def expected_frame(events: list[dict], now: datetime) -> pd.DataFrame:
    frame = pd.DataFrame(events)
    frame = frame[frame["app_name"] == SPEC_APP_NAME].copy()
    frame["ts"] = pd.to_datetime(frame["timestamp"])
    frame["date"] = frame["ts"].dt.date
    frame["error"] = frame["action"].str.contains(".error", regex=True)  # LIKE '%_error%', case-sensitive
    return frame


def test_the_error_rate_alert_triggers_above_five_percent_in_the_last_hour(reader):
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    reader.load(make_events(now))
    result = run(reader, alert_sql("error_rate"))
    assert float(result.iloc[0]["error_rate"]) == pytest.approx(0.25)  # 1 of 4 this app's events in the hour
    assert int(result.iloc[0]["events"]) == 4
    assert triggers("error_rate", result)


def test_the_error_rate_alert_stays_ok_without_errors_and_on_an_empty_hour(reader):
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    reader.load([_event(now - timedelta(minutes=5), "execute_sql") for _ in range(30)]
                + [_event(now - timedelta(hours=3), "sql_error")])
    assert not triggers("error_rate", run(reader, alert_sql("error_rate")))


def test_the_no_events_alert_triggers_on_silence_and_on_an_empty_table(reader):
    empty = run(reader, alert_sql("no_events"))
    assert triggers("no_events", empty)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    reader.load([_event(now - timedelta(hours=30), "execute_sql"), _event(now - timedelta(minutes=5), "x",
                                                                          app="some-other-app")])
    silent = run(reader, alert_sql("no_events"))
    assert float(silent.iloc[0]["hours_since_last_event"]) == pytest.approx(30, abs=0.2)
    assert triggers("no_events", silent)
    reader.load([_event(now - timedelta(minutes=12), "execute_sql")])
    lively = run(reader, alert_sql("no_events"))
    assert float(lively.iloc[0]["hours_since_last_event"]) == pytest.approx(0.2, abs=0.1)
    assert not triggers("no_events", lively)


def test_dashboard_datasets_give_the_independently_computed_figures(reader):
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    events = make_events(now)
    reader.load(events)
    ours = expected_frame(events, now)
    today = now.date()

    daily = run(reader, dataset_sql("ds_daily_active_users"))
    want = ours.groupby("date")["user"].nunique()
    assert dict(zip(daily["date"], daily["active_users"])) == want.to_dict()

    per_day = run(reader, dataset_sql("ds_events_per_day"))
    last30 = ours[ours["date"] >= today - timedelta(days=30)]
    want = last30.groupby("date").agg(events=("action", "size"), errors=("error", "sum"))
    assert dict(zip(per_day["date"], per_day["events"])) == want["events"].to_dict()
    assert dict(zip(per_day["date"], per_day["errors"])) == want["errors"].to_dict()
    rates = dict(zip(per_day["date"], per_day["error_rate"].astype(float)))
    assert rates == pytest.approx((want["errors"] / want["events"]).to_dict())

    week = ours[ours["date"] >= today - timedelta(days=7)]
    popular = run(reader, dataset_sql("ds_popular_actions"))
    assert dict(zip(popular["action"], popular["count"])) == week["action"].value_counts().to_dict()
    errors = run(reader, dataset_sql("ds_error_analysis"))
    assert dict(zip(errors["action"], errors["error_count"])) == week[week["error"]]["action"].value_counts().to_dict()

    latency = run(reader, dataset_sql("ds_latency")).set_index("action")
    assert int(latency.loc["execute_sql", "events"]) == 3  # the NULL-duration error is left out
    assert float(latency.loc["execute_sql", "p50_ms"]) == pytest.approx(200.0)

    summary = run(reader, dataset_sql("ds_summary")).iloc[0]
    assert int(summary["events"]) == len(week)
    assert int(summary["active_users"]) == week["user"].nunique()
    assert float(summary["error_rate"]) == pytest.approx(week["error"].mean())
    assert float(summary["hours_since_last_event"]) == pytest.approx(10 / 60, abs=0.1)
