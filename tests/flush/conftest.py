"""Fixtures for the flush tests: a spool filled fast (one executemany) and settings pointing at the fake warehouse."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from fake_databricks import FakeWarehouse
from ctg_app.settings import Settings, reload_settings
from ctg_app.tracking.recording.event import EVENT_COLUMNS, Event
from ctg_app.tracking.recording.spool import Spool

TABLE = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"
APP = "elevio-ctg-chatbot-vanna"
ACTIONS = ["app_start", "generate_question", "sql_query", "execute_sql", "edit_sql", "download_results",
           "sql_error", "llm_error"]


def make_events(n: int, *, start: datetime | None = None, prefix: str = "") -> list[tuple]:
    """``n`` event tuples in ``EVENT_COLUMNS`` order with unique ids, one millisecond apart."""
    start = start or datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=5)
    rng = random.Random(n)
    out = []
    for i in range(n):
        ts = (start + timedelta(microseconds=1000 * i + 7)).isoformat(sep=" ", timespec="microseconds")
        action = ACTIONS[i % len(ACTIONS)]
        error = action.endswith("_error")
        out.append(Event(  # by name: the field order comes from the event's declaration
            event_id=f"{prefix}{i:08d}-{rng.getrandbits(64):016x}", timestamp=ts, app_name=APP,
            user=f"user{i % 13}@eleviogroup.com", action=action, operation="run_sql" if i % 3 else None,
            status="error" if error else "ok", error_type="ValueError" if error else None,
            error_message="bad 'quote' ünïcode" if error else None, duration_ms=round(rng.random() * 100, 3),
            session_id=f"s{i % 17}", details=json.dumps({"i": i}),
        ))
    return out


def fill(spool: Spool, events: list[tuple]) -> None:
    """Insert events into the spool with one executemany (fast; not the request path)."""
    with spool.transaction() as conn:
        conn.executemany(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})", events)


def warehouse_ids(wh: FakeWarehouse, table: str = TABLE) -> list[str]:
    """Every event_id in the warehouse table (duplicates kept)."""
    return [row[0] for row in wh.query(f"SELECT event_id FROM {table}")]


@pytest.fixture
def spool_path(tmp_path) -> str:
    return str(tmp_path / "spool" / "usage-spool.sqlite3")


@pytest.fixture
def flush_env(fake_warehouse: FakeWarehouse, spool_path: str, monkeypatch) -> Iterator[FakeWarehouse]:
    """The fake warehouse's DATABRICKS_* variables, a temp spool and a short warehouse timeout, in os.environ."""
    for key, value in fake_warehouse.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRACKING_SPOOL_PATH", spool_path)
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "2")
    reload_settings()
    yield fake_warehouse


@pytest.fixture
def settings(flush_env: FakeWarehouse) -> Settings:
    return reload_settings()


@pytest.fixture
def spool(settings: Settings) -> Iterator[Spool]:
    sp = Spool(settings.spool_path)
    yield sp
    sp.close()
