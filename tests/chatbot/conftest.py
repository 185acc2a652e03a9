"""Fixtures for the chatbot tests: an isolated sample DB, spool and settings; caches cleared; an AppTest factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from ctg_app.ui import operations
from ctg_app.chatbot.data.sample import ensure_sample_db
from ctg_app.settings import reload_settings
from ctg_app.tracking import Spool

APP_PATH = Path(__file__).resolve().parents[2] / "ctg_app" / "app.py"
CTG_SCHEMA = "ctg.project_controlling"


USAGE_TABLE = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"


def sample_and_usage_warehouse() -> Iterator[object]:
    """A started fake warehouse holding the sample tables under :data:`CTG_SCHEMA` and the usage table with one row
    (what the chat SQL policy tests probe: allowed data tables beside a table chat SQL must never read); closed after."""
    from fake_databricks import FakeWarehouse

    from ctg_app.chatbot.data.sample import sample_tables
    from ctg_app.tracking.analytics.spec_sql import SPEC_CREATE_TABLE

    wh = FakeWarehouse().start()
    try:
        for table, df in sample_tables().items():
            wh.load_dataframe(f"{CTG_SCHEMA}.{table}", df)
        wh.query(SPEC_CREATE_TABLE)
        wh.query(f"INSERT INTO {USAGE_TABLE} (timestamp, app_name, user, action) "
                 "VALUES (TIMESTAMP'2024-01-01 00:00:00', 'a', 'boss@example.com', 'app_start')")
        yield wh
    finally:
        wh.close()


def serve_sample_from_warehouse(wh, monkeypatch: pytest.MonkeyPatch, timeout_s: float = 5) -> None:
    """Load the sample tables into the fake warehouse ``wh`` under :data:`CTG_SCHEMA` and point the app's data source
    at it (``WAREHOUSE_TIMEOUT_S=timeout_s``); the caller reloads the settings after any further changes."""
    from ctg_app.chatbot.data.sample import sample_tables

    for table, df in sample_tables().items():
        wh.load_dataframe(f"{CTG_SCHEMA}.{table}", df)
    for name, value in wh.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CTG_DATA_SOURCE", "databricks")
    monkeypatch.setenv("CTG_DATA_SCHEMA", CTG_SCHEMA)
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", str(timeout_s))


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sample database for the whole run (built once, opened read-only)."""
    return ensure_sample_db(tmp_path_factory.mktemp("ctg-sample") / "ctg-sample.sqlite3")


@pytest.fixture
def spool(tracking_spool: Spool) -> Spool:
    """The project's ``tracking_spool``: a fresh spool the app's tracker records into."""
    return tracking_spool


@pytest.fixture
def chatbot_env(sample_db: Path, spool: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Offline defaults on the sample DB; Streamlit caches cleared before and after. Yields the spool."""
    for name in ("LLM_PROVIDER", "CTG_DATA_SOURCE", "TRUSTED_USER_HEADER", "DEBUG_LOGGING", "CTG_DATA_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CTG_SAMPLE_DB_PATH", str(sample_db))
    reload_settings()
    st.cache_data.clear()
    st.cache_resource.clear()
    operations.clear_caches()
    yield spool
    st.cache_data.clear()
    st.cache_resource.clear()
    reload_settings()


def actions(spool: object) -> list[tuple[str, str, str]]:
    """(action, user, status) of every spooled event, in insertion order."""
    return [(row["action"], row["user"], row["status"]) for row in spool.rows()]
