"""OAuth machine-to-machine auth for a service principal, end to end: ``connect()`` -> databricks-sdk's OAuth code ->
the fake warehouse's OIDC discovery + token endpoint -> the real ``databricks.sql`` connector with the issued token."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator

import pytest

from fake_databricks import FakeWarehouse
from ctg_app.settings import Settings, reload_settings
from ctg_app.warehouse import connection as db_connection
from ctg_app.warehouse.connection import (
    connect,
    describe_error,
    is_auth_error,
    oauth_base_url,
    warehouse_errors,
)
from ctg_app.tracking.delivery.flush import Flusher
from ctg_app.tracking.recording.spool import Spool
from tests.flush.conftest import TABLE, fill, make_events, warehouse_ids

CLIENT_ID = "7c0d3b4e-sp-ctg-app"
SECRET = "dose" + "0123456789abcdef" * 2
WRONG = "dose" + "fedcba9876543210" * 2
REJECTED = "service principal rejected: check DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET"


@pytest.fixture(autouse=True)
def _fresh_sdk_configs() -> Iterator[None]:
    db_connection._configs.clear()
    yield
    db_connection._configs.clear()


@pytest.fixture
def oauth_wh(tmp_path, monkeypatch) -> Iterator[FakeWarehouse]:
    """A fake warehouse in OAuth mode, its service-principal variables (no access token) in os.environ."""
    with FakeWarehouse(oauth_clients={CLIENT_ID: SECRET}) as wh:
        for key, value in wh.oauth_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("TRACKING_SPOOL_PATH", str(tmp_path / "spool.sqlite3"))
        monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "2")
        yield wh


@pytest.fixture
def sp_settings(oauth_wh: FakeWarehouse) -> Settings:
    settings = reload_settings()
    assert settings.databricks_access_token is None and settings.databricks_client_secret == SECRET
    return settings


def _scan_for_secret(*texts: str) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    wrong_basic = base64.b64encode(f"{CLIENT_ID}:{WRONG}".encode()).decode()
    for text in texts:
        for needle in (SECRET, WRONG, basic, wrong_basic):
            assert needle not in text


def test_oauth_env_has_client_credentials_and_no_token(oauth_wh: FakeWarehouse) -> None:
    env = oauth_wh.oauth_env()
    assert env["DATABRICKS_CLIENT_ID"] == CLIENT_ID and env["DATABRICKS_CLIENT_SECRET"] == SECRET
    assert "DATABRICKS_ACCESS_TOKEN" not in env and env["DATABRICKS_CONNECTION_URI"] == oauth_wh.uri


def test_oauth_host_follows_the_connection_uri() -> None:
    base = Settings.from_sources({"DATABRICKS_SERVER_HOSTNAME": "adb-1.azuredatabricks.net"})
    assert oauth_base_url(base) == "https://adb-1.azuredatabricks.net"
    local = base.replace(databricks_connection_uri="http://127.0.0.1:54321/sql/1.0/warehouses/fake")
    assert oauth_base_url(local) == "http://127.0.0.1:54321"
    assert oauth_base_url(base.replace(databricks_connection_uri="https://[::1]:8443/x")) == "https://[::1]:8443"
    assert oauth_base_url(base.replace(databricks_connection_uri="https://ws.example.com/x")) == "https://ws.example.com"


def test_connect_select_1_with_one_token_for_many_statements(sp_settings: Settings, oauth_wh: FakeWarehouse) -> None:
    with connect(sp_settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert [tuple(r) for r in cur.fetchall()] == [(1,)]
        for i in range(5):
            cur.execute("SELECT :i AS i", {"i": i})
            assert cur.fetchall()[0][0] == i
    assert oauth_wh.tokens_issued == 1
    # a reconnect in the same process (the background flusher reconnects every interval) reuses the valid token
    with connect(sp_settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchall()[0][0] == 2
    assert oauth_wh.tokens_issued == 1
    assert oauth_wh.statement_count == 7


def test_flush_delivers_events_with_oauth(sp_settings: Settings, oauth_wh: FakeWarehouse) -> None:
    spool = Spool(sp_settings.spool_path)
    try:
        events = make_events(250)
        fill(spool, events)
        report = Flusher(sp_settings, spool=spool, batch_size=100).run()
        assert report.outcome == "ok", report.error
        assert report.delivered == report.inserted == 250 and report.batches == 3
        assert sorted(warehouse_ids(oauth_wh, TABLE)) == sorted(e[0] for e in events)
        assert spool.counts() == {"pending": 0, "delivered": 250, "dead": 0}
    finally:
        spool.close()
    assert oauth_wh.tokens_issued == 1


def test_wrong_secret_fails_fast_with_a_clear_message_and_no_secret(
    oauth_wh: FakeWarehouse, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", WRONG)
    settings = reload_settings()
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(warehouse_errors()) as info:
        connect(settings)
    assert time.monotonic() - started < 5
    message = describe_error(info.value, settings)
    assert message.startswith(REJECTED) and "invalid_client" in message
    assert is_auth_error(info.value)
    assert oauth_wh.tokens_issued == 0 and oauth_wh.oauth.rejections >= 1

    # the flush: a configuration outcome, rows stay pending (never dead-lettered), the reason is stored redacted
    spool = Spool(settings.spool_path)
    try:
        fill(spool, make_events(20))
        report = Flusher(settings, spool=spool).run()
        assert report.outcome == "config" and report.error_kind == "auth"
        assert report.error.startswith(REJECTED) and report.delivered == 0
        assert spool.counts() == {"pending": 20, "delivered": 0, "dead": 0}
        stored = " ".join(str(r) for r in spool.connection().execute("SELECT * FROM events").fetchall())
    finally:
        spool.close()
    _scan_for_secret(str(info.value), repr(info.value), message, report.error, stored, caplog.text)
    assert REJECTED in caplog.text  # what the operator sees in the log


def test_dead_warehouse_with_oauth_fails_in_seconds(sp_settings: Settings, oauth_wh: FakeWarehouse, caplog) -> None:
    oauth_wh.stop()
    spool = Spool(sp_settings.spool_path)
    try:
        fill(spool, make_events(10))
        started = time.monotonic()
        report = Flusher(sp_settings, spool=spool).run()
        assert time.monotonic() - started < 8
        assert report.outcome == "unreachable" and "unreachable" in report.error and "OAuth" in report.error
        assert spool.counts()["pending"] == 10
        oauth_wh.start()
        report = Flusher(sp_settings, spool=spool).run(ignore_backoff=True)
        assert report.outcome == "ok" and report.delivered == 10
    finally:
        spool.close()
    _scan_for_secret(caplog.text)


def test_unrelated_databricks_env_and_profile_are_ignored(
    oauth_wh: FakeWarehouse, tmp_path, monkeypatch
) -> None:
    """A PAT / profile / other host meant for the Databricks CLI must not change the service principal's login."""
    (tmp_path / ".databrickscfg").write_text(
        "[DEFAULT]\nhost = https://elsewhere.cloud.databricks.com\ntoken = dapi" + "9" * 32 + "\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "DEFAULT")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi" + "8" * 32)
    monkeypatch.setenv("DATABRICKS_DISCOVERY_URL", "https://elsewhere.invalid/oidc/.well-known/x")
    settings = reload_settings()
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall()[0][0] == 1
    assert oauth_wh.tokens_issued == 1


def test_token_request_asks_for_the_all_apis_scope(sp_settings: Settings, oauth_wh: FakeWarehouse) -> None:
    """SDK releases 0.40-0.73 join a scope *string* character by character ("a l l - a p i s"); the workspace
    refuses that with invalid_scope. Going through the SDK's own oauth-m2m strategy sends the list it expects."""
    with connect(sp_settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall()[0][0] == 1
    assert oauth_wh.oauth.scopes_requested == ["all-apis"]


def test_every_connection_names_the_app_in_its_user_agent(sp_settings: Settings, oauth_wh: FakeWarehouse) -> None:
    """The warehouse's query history attributes statements by User-Agent: every Thrift call carries ctg-app/<v>."""
    entry = db_connection.user_agent_entry()
    assert entry == f"ctg-app/{db_connection.app_version()}" and entry != "ctg-app/0+unknown"
    oauth_wh.reset_stats()
    spool = Spool(sp_settings.spool_path)
    try:
        fill(spool, make_events(5))
        assert Flusher(sp_settings, spool=spool).run().delivered == 5
    finally:
        spool.close()
    with connect(sp_settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
    agents = oauth_wh.user_agents
    assert agents and sum(agents.values()) >= 4
    assert all(entry in agent for agent in agents), agents
