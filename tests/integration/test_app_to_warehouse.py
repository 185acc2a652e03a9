"""The whole path a user's action takes: the real app (AppTest) → spool → in-app background flusher → warehouse.

Runs against the local fake warehouse through the real databricks-sql-connector, configured by environment variables
alone, exactly as production is.
"""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ctg_app.ui import operations
from ctg_app.chatbot.data.sample import ensure_sample_db
from ctg_app.settings import SPEC_TABLE, reload_settings
from ctg_app.tracking import reset_tracker
from ctg_app.tracking.delivery.background import stop_background_flusher
from tests.chatbot.conftest import APP_PATH


def wait_for(predicate, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture
def app_with_warehouse(fake_warehouse_env, tracking_spool, tmp_path, monkeypatch):
    monkeypatch.setenv("CTG_SAMPLE_DB_PATH", str(ensure_sample_db(tmp_path / "sample.sqlite3")))
    monkeypatch.setenv("BACKGROUND_FLUSH", "true")
    monkeypatch.setenv("BACKGROUND_FLUSH_INTERVAL_S", "0.2")
    reload_settings()
    reset_tracker()
    st.cache_data.clear()
    operations.clear_caches()
    yield fake_warehouse_env, tracking_spool
    stop_background_flusher()
    st.cache_data.clear()


def test_a_question_in_the_app_reaches_the_central_table_once(app_with_warehouse):
    wh, spool = app_with_warehouse
    at = AppTest.from_file(str(APP_PATH), default_timeout=30).run()
    assert not at.exception
    at.chat_input[0].set_value("How many clients per country?").run()
    assert not at.exception
    at.run()  # reruns add nothing, here or in the warehouse

    spooled = [(row["event_id"], row["action"]) for row in spool.rows()]
    assert [a for _, a in spooled][:4] == ["app_start", "generate_question", "sql_query", "execute_sql"]

    def delivered():
        try:
            rows = wh.query(f"SELECT event_id, action, user, app_name FROM {SPEC_TABLE}")
        except Exception:  # the flusher has not created the table yet
            return None
        return rows if len(rows) >= len(spooled) else None

    rows = wait_for(delivered)
    assert sorted((r[0], r[1]) for r in rows) == sorted(spooled)
    assert {r[2] for r in rows} == {"test@example.com"}
    assert {r[3] for r in rows} == {"elevio-ctg-chatbot-vanna"}
    assert wait_for(lambda: spool.counts()["pending"] == 0 or None)

    # The spec's own example query sees the session.
    popular = dict(wh.query(f"""
        SELECT action, COUNT(*) as count
        FROM {SPEC_TABLE}
        WHERE app_name = 'elevio-ctg-chatbot-vanna'
          AND timestamp >= CURRENT_DATE - INTERVAL 7 DAY
        GROUP BY action
        ORDER BY count DESC"""))
    assert popular["app_start"] == 1 and popular["execute_sql"] == 1
