"""The fake warehouse's OAuth M2M mode: OIDC discovery, the client_credentials token endpoint, issued tokens as Bearer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from databricks import sql

from fake_databricks import FakeWarehouse

CLIENT, SECRET = "sp-client", "dose-fake-secret-0123456789"


@pytest.fixture
def wh() -> Iterator[FakeWarehouse]:
    with FakeWarehouse(oauth_clients={CLIENT: SECRET}, oauth_token_ttl_s=600) as warehouse:
        yield warehouse


def _base(wh: FakeWarehouse) -> str:
    return f"http://{wh.host}:{wh.port}"


def _token_url(wh: FakeWarehouse) -> str:
    doc = requests.get(f"{_base(wh)}/oidc/.well-known/oauth-authorization-server", timeout=5).json()
    assert doc["token_endpoint"] == f"{_base(wh)}/oidc/v1/token"
    return doc["token_endpoint"]


def test_token_endpoint_basic_and_form_auth(wh: FakeWarehouse) -> None:
    url = _token_url(wh)
    ok = requests.post(url, {"grant_type": "client_credentials", "scope": "all-apis"}, auth=(CLIENT, SECRET), timeout=5)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/json"
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600 and body["access_token"]
    form = requests.post(url, {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET},
                         timeout=5)
    assert form.status_code == 200 and form.json()["access_token"] != body["access_token"]
    assert wh.tokens_issued == 2


def test_wrong_secret_unknown_client_and_grant(wh: FakeWarehouse) -> None:
    url = _token_url(wh)
    for auth in ((CLIENT, "wrong"), ("nobody", SECRET)):
        bad = requests.post(url, {"grant_type": "client_credentials"}, auth=auth, timeout=5)
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
        assert SECRET not in bad.text
    grant = requests.post(url, {"grant_type": "password"}, auth=(CLIENT, SECRET), timeout=5)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    assert wh.tokens_issued == 0 and wh.oauth.rejections == 2


def test_issued_token_is_accepted_by_the_connector_until_expired(wh: FakeWarehouse) -> None:
    token = requests.post(_token_url(wh), {"grant_type": "client_credentials"}, auth=(CLIENT, SECRET),
                          timeout=5).json()["access_token"]
    with sql.connect(**wh.connect_kwargs(access_token=token)) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall()[0][0] == 1
    with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:  # the static token still works
        cur.execute("SELECT 1")
    wh.oauth.expire_all()
    with pytest.raises(sql.exc.RequestError):
        sql.connect(**wh.connect_kwargs(access_token=token))
    with pytest.raises(sql.exc.RequestError):
        sql.connect(**wh.connect_kwargs(access_token="fake-oauth-made-up"))


def test_sdk_config_logs_in_against_the_fake(wh: FakeWarehouse, monkeypatch) -> None:
    """``databricks.sdk.core.Config`` (host metadata, discovery, client_credentials) works against the fake too."""
    from databricks.sdk.core import Config

    for name in ("DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_DISCOVERY_URL", "DATABRICKS_HOST"):
        monkeypatch.delenv(name, raising=False)
    cfg = Config(host=_base(wh), client_id=CLIENT, client_secret=SECRET, auth_type="oauth-m2m",
                 retry_timeout_seconds=5, http_timeout_seconds=5)
    header = cfg.authenticate()["Authorization"]
    assert header.startswith("Bearer fake-oauth-") and wh.oauth.accepts(header) and wh.tokens_issued == 1


def test_oauth_env_needs_oauth_mode() -> None:
    with FakeWarehouse() as plain:
        assert plain.tokens_issued == 0
        with pytest.raises(RuntimeError):
            plain.oauth_env()
        # without OAuth mode the discovery path is not served
        assert requests.get(f"{_base(plain)}/oidc/.well-known/oauth-authorization-server", timeout=5).status_code == 404


def test_a_scope_sent_character_by_character_is_refused(wh: FakeWarehouse) -> None:
    """What SDK releases 0.40-0.73 sent when handed the scope as a string; a workspace answers invalid_scope."""
    url = _token_url(wh)
    bad = requests.post(url, {"grant_type": "client_credentials", "scope": " ".join("all-apis")}, auth=(CLIENT, SECRET),
                        timeout=5)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_scope"
    good = requests.post(url, {"grant_type": "client_credentials", "scope": "all-apis offline_access"},
                         auth=(CLIENT, SECRET), timeout=5)
    assert good.status_code == 200
    assert wh.oauth.scopes_requested == ["a l l - a p i s", "all-apis offline_access"] and wh.tokens_issued == 1


def test_user_agents_are_counted_per_thrift_call() -> None:
    with FakeWarehouse() as wh:
        with sql.connect(**wh.connect_kwargs(user_agent_entry="probe/1.0")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        assert wh.user_agents and all("probe/1.0" in agent for agent in wh.user_agents)
        assert sum(wh.user_agents.values()) == sum(wh.method_counts.values())
        wh.reset_stats()
        assert wh.user_agents == {}
