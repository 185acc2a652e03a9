"""Databricks unified auth for every command line (issue 21): ``--profile NAME`` picks a profile of the config file
(``DATABRICKS_CONFIG_FILE``, else ``~/.databrickscfg``), resolved by databricks-sdk's own ``Config``; no DATABRICKS_*
credential is in the environment. Real connector and SDK against the fake workspace."""

from __future__ import annotations

import json

import pytest

from ctg_app import cli
from ctg_app.settings import reload_settings
from ctg_app.tracking.delivery.cli import EXIT_CONFIG, EXIT_OK
from ctg_app.tracking.delivery.cli import main as flush_spool
from ctg_app.tracking.recording.spool import Spool
from tests.flush.conftest import fill, make_events, warehouse_ids


@pytest.fixture
def profile_env(fake_warehouse, tmp_path, monkeypatch):
    """A config file with profile ``fake`` (host, token, warehouse_id) and nothing else in the environment."""
    config = tmp_path / "databrickscfg"
    config.write_text(f"[DEFAULT]\nhost = https://elsewhere.invalid\n\n[fake]\nhost = {fake_warehouse.base_url}\n"
                      f"token = {fake_warehouse.token}\nwarehouse_id = {fake_warehouse.http_path.rsplit('/', 1)[1]}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    monkeypatch.setenv("TRACKING_SPOOL_PATH", str(tmp_path / "spool" / "usage-spool.sqlite3"))
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "3")
    reload_settings()
    return fake_warehouse


def test_flush_spool_with_a_profile(profile_env, capsys) -> None:
    settings = reload_settings()
    assert not settings.warehouse_configured  # no DATABRICKS_* credentials at all
    spool = Spool(settings.spool_path)
    events = make_events(300)
    fill(spool, events)
    spool.close()
    assert flush_spool(["--profile", "fake", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["delivered"] == 300
    assert sorted(warehouse_ids(profile_env)) == sorted(e[0] for e in events)
    assert {who for _, who in profile_env.statement_log} == {"service-principal"}  # the profile's token


def test_ctg_app_commands_with_a_profile(profile_env, capsys) -> None:
    assert cli.main(["selftest", "--profile", "fake", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    delivery = next(c for c in report["checks"] if c["name"] == "delivery to the warehouse")
    assert report["passed"] and delivery["status"] == "PASS"
    assert cli.main(["usage-report", "--profile", "fake", "--source", "warehouse", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"].startswith("warehouse")


def test_an_unknown_profile_is_a_configuration_error(profile_env, capsys) -> None:
    assert flush_spool(["--profile", "nope", "--migrate"]) == EXIT_CONFIG
    assert "profile 'nope'" in capsys.readouterr().err


def test_explicit_environment_credentials_win_over_a_profile(profile_env, tmp_path, monkeypatch) -> None:
    """A profile with a wrong token is not used when DATABRICKS_* credentials are set (they keep working as before)."""
    bad = tmp_path / "bad.cfg"
    bad.write_text(f"[fake]\nhost = {profile_env.base_url}\ntoken = dapi-wrong\nwarehouse_id = nope\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(bad))
    for key, value in profile_env.env().items():
        monkeypatch.setenv(key, value)
    assert flush_spool(["--profile", "fake", "--migrate"]) == EXIT_OK


def test_a_databricks_job_uses_the_sdk_default_auth(fake_warehouse, tmp_path, monkeypatch, capsys) -> None:
    """On Databricks compute (DATABRICKS_RUNTIME_VERSION set) with no app credentials, the SDK's default chain
    authenticates (here its DATABRICKS_HOST / DATABRICKS_TOKEN variables stand for the job's run-as identity)."""
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "client.2.0")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    monkeypatch.setenv("DATABRICKS_TOKEN", fake_warehouse.token)  # the SDK's name; the app reads only ..._ACCESS_TOKEN
    monkeypatch.setenv("DATABRICKS_HOST", fake_warehouse.base_url)  # for the SDK
    monkeypatch.setenv("DATABRICKS_CONNECTION_URI", fake_warehouse.uri)  # the local stand-in's address, for the app
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "3")
    reload_settings()
    assert flush_spool(["--migrate"]) == EXIT_OK, capsys.readouterr().err
