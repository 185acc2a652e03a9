"""Every report gives the same answer on the fake warehouse and on the spool; the spec's verbatim queries agree."""

from __future__ import annotations

from datetime import date, datetime, timezone
import os
from pathlib import Path

import pandas as pd
import pytest
from freezegun import freeze_time

from ctg_app.settings import get_settings
from ctg_app.tracking.analytics.reports import (
    REPORTS,
    WarehouseReader,
    nearest_rank,
    run_on_spool,
    run_on_warehouse,
    run_report,
    run_spec_query,
    spool_sql,
    to_sqlite,
    window_start,
)

from ctg_app.tracking.analytics.spec_sql import SPEC_CREATE_TABLE, SPEC_QUERIES

from .conftest import load_spool, load_warehouse, make_conversations, make_events


@pytest.fixture
def both(tracking_spool, warehouse_env):
    events = make_events() + make_conversations()
    load_spool(tracking_spool, events)
    load_warehouse(warehouse_env, events)
    reader = WarehouseReader(get_settings())
    yield tracking_spool, reader, events
    reader.close()


@pytest.mark.parametrize("name", list(REPORTS))
@pytest.mark.parametrize("filters", [{}, {"user": "erin@eleviogroup.com"}, {"action": "execute_sql"}, {"days": 3}])
def test_warehouse_and_spool_agree(both, name, filters):
    spool, reader, _ = both
    on_spool = run_on_spool(name, spool, **filters)
    on_warehouse = run_on_warehouse(name, reader, **filters)
    pd.testing.assert_frame_equal(on_spool, on_warehouse, check_dtype=False)
    if name not in ("funnel",) and not filters:
        assert not on_spool.empty, name


@pytest.mark.parametrize("name", list(SPEC_QUERIES))
def test_spec_queries_verbatim_equal_named_reports(both, name):
    spool, reader, _ = both
    verbatim = run_spec_query(name, reader)
    ours = run_on_warehouse(name, reader)
    key = list(verbatim.columns)
    assert key == list(ours.columns)
    sort = lambda f: f.sort_values(key).reset_index(drop=True)  # noqa: E731 - the spec orders ties arbitrarily
    pd.testing.assert_frame_equal(sort(verbatim), sort(ours), check_dtype=False)
    pd.testing.assert_frame_equal(sort(verbatim), sort(run_on_spool(name, spool)), check_dtype=False)
    assert len(verbatim) > 0


REPO_SPEC = Path(__file__).resolve().parents[2] / "docs" / "usage-tracking-spec.md"  # the copy in the repository
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "usage-tracking.md"  # beside the checkout


def shared_spec_bytes(spec_file: Path = SHARED_SPEC) -> bytes | None:
    """The shared spec's bytes, or None where no ``shared/`` lies beside the checkout (a plain clone); under
    ``CI=true`` a missing file fails, since CI lays shared/ beside the clone."""
    if not spec_file.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the specification is not at {spec_file} (CI must check out shared/ beside the clone)")
        return None
    return spec_file.read_bytes()


def test_a_missing_shared_spec_fails_under_ci_only(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must check out shared"):
        shared_spec_bytes(tmp_path / "usage-tracking.md")
    monkeypatch.delenv("CI")
    assert shared_spec_bytes(tmp_path / "usage-tracking.md") is None
    (tmp_path / "usage-tracking.md").write_bytes(b"spec")
    assert shared_spec_bytes(tmp_path / "usage-tracking.md") == b"spec"


def test_spec_sql_is_the_specs_character_for_character():
    spec = REPO_SPEC.read_text()
    for sql in (SPEC_CREATE_TABLE, *SPEC_QUERIES.values()):
        assert sql in spec


def test_the_repositorys_spec_is_the_shared_spec_byte_for_byte():
    shared = shared_spec_bytes()
    copy = REPO_SPEC.read_bytes()
    assert b"central_app_usage" in copy and b"## Example Queries" in copy
    if shared is not None:  # a plain clone has only the copy; beside shared/ (and always in CI) they must agree
        assert copy == shared, "docs/usage-tracking-spec.md differs from shared/spec/usage-tracking.md: copy it again"


def test_error_analysis_like_is_case_sensitive_on_both(both):
    spool, reader, _ = both
    frame = run_on_spool("error_analysis", spool)
    assert "SQL_ERROR_UPPER" not in set(frame["action"])  # Databricks LIKE is case-sensitive, so is the GLOB
    assert "GLOB '*?error*'" in spool_sql("error_analysis", since=date(2025, 1, 1))


def test_other_apps_are_excluded(both):
    spool, _, events = both
    counts = run_on_spool("popular_actions", spool, days=None)
    ours = sum(1 for e in events if e["app_name"] == get_settings().app_name)
    assert counts["count"].sum() == ours


def test_funnel_shape_and_rates(tracking_spool):
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    events = []
    for user, steps in {"a@x": 4, "b@x": 3, "c@x": 1, "d@x": 2}.items():
        for action in ["generate_question", "sql_query", "execute_sql", "download_results"][:steps]:
            events.append(action)
            from .conftest import ts_text

            tracking_spool.connection().execute(
                "INSERT INTO events (event_id, timestamp, app_name, user, action, status, details, state) "
                "VALUES (?, ?, 'elevio-ctg-chatbot-vanna', ?, ?, 'ok', '{}', 'pending')",
                (f"{user}-{action}", ts_text(now), user, action))
    frame = run_on_spool("funnel", tracking_spool)
    assert frame["users"].tolist() == [4, 3, 2, 1]
    assert frame["conversion_from_previous"].tolist()[1:] == [0.75, round(2 / 3, 4), 0.5]
    assert frame["conversion_from_start"].tolist() == [1.0, 0.75, 0.5, 0.25]


def test_nearest_rank():
    values = sorted([15, 20, 35, 40, 50])
    assert nearest_rank(values, 50) == 35
    assert nearest_rank(values, 95) == 50
    assert nearest_rank(values, 5) == 15
    assert nearest_rank([], 50) is None
    assert nearest_rank(list(range(1, 101)), 95) == 95


def test_windows_under_freezegun(tracking_spool):
    """Events at 23:59:59.999999 and 00:00:00 UTC land on the right days; windows follow the frozen clock."""
    rows = [("2025-03-09 23:59:59.999999", "a@x"), ("2025-03-10 00:00:00.000000", "b@x"),
            ("2025-03-10 12:00:00.000000", "c@x"), ("2025-03-02 23:59:59.999999", "d@x"),
            ("2025-03-03 00:00:00.000000", "e@x")]
    for i, (ts, user) in enumerate(rows):
        tracking_spool.connection().execute(
            "INSERT INTO events (event_id, timestamp, app_name, user, action, status, details, state) "
            "VALUES (?, ?, 'elevio-ctg-chatbot-vanna', ?, 'execute_sql', 'ok', '{}', 'pending')", (str(i), ts, user))
    with freeze_time("2025-03-10 23:59:59.999999"):
        assert window_start(7) == date(2025, 3, 3)
        dau = run_on_spool("daily_active_users", tracking_spool)
        assert dict(zip(dau["date"], dau["active_users"])) == {
            date(2025, 3, 10): 2, date(2025, 3, 9): 1, date(2025, 3, 3): 1, date(2025, 3, 2): 1}
        week = run_on_spool("popular_actions", tracking_spool)  # since 2025-03-03 00:00:00 inclusive
        assert week["count"].tolist() == [4]
        day = run_on_spool("activity_per_user", tracking_spool, days=0)  # today only
        assert sorted(day["user"]) == ["b@x", "c@x"]
    with freeze_time("2025-03-11 00:00:00"):
        assert run_on_spool("popular_actions", tracking_spool)["count"].tolist() == [3]  # 03-03 00:00 is out now


def test_to_sqlite_uses_the_indexed_expression(tracking_spool):
    sql = spool_sql("popular_actions", since=date(2025, 1, 1))
    assert "SUBSTR(timestamp, 1, 10)" in sql and "SUBSTRING" not in sql.upper()
    plan = " ".join(r[-1] for r in tracking_spool.connection().execute(
        "EXPLAIN QUERY PLAN " + sql, {"app_name": "a", "since_day": "2025-01-01"}))
    assert "idx_events_report" in plan
    assert to_sqlite("SELECT DATE(timestamp) FROM t") == "SELECT SUBSTR(timestamp, 1, 10) FROM t"


def test_run_report_auto_falls_back_to_spool_when_unreachable(tracking_spool, warehouse_env):
    load_spool(tracking_spool, make_events(n=50))
    warehouse_env.stop()
    result = run_report("popular_actions")
    assert result.source == "spool"
    assert "unavailable" in result.notice.lower()
    assert not result.empty


def test_run_report_auto_offline_uses_spool(tracking_spool):
    load_spool(tracking_spool, make_events(n=50))
    result = run_report("daily_active_users")
    assert result.source == "spool" and result.notice is None
    assert result.as_dict()["rows"]


def test_warehouse_without_table_is_empty_not_an_error(tracking_spool, warehouse_env):
    result = run_report("popular_actions", source="warehouse")
    assert result.empty and "does not exist" in result.notice
