"""Settings come from environment variables, then Streamlit secrets, with typed values and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctg_app.settings import SPEC_APP_NAME, SPEC_TABLE, Settings, SettingsError


def test_defaults_follow_the_spec(tmp_path, monkeypatch):
    settings = Settings.from_sources({})
    assert settings.app_name == SPEC_APP_NAME == "elevio-ctg-chatbot-vanna"
    assert settings.default_user == "ctg_chatbot_user@eleviogroup.com"
    assert settings.tracking_table == SPEC_TABLE
    assert settings.trusted_user_header is None
    assert settings.debug_logging is False
    assert settings.spool_path.name == "usage-spool.sqlite3"
    assert not settings.warehouse_configured


def test_environment_wins_over_secrets():
    settings = Settings.from_sources(
        {"DEBUG_LOGGING": "true", "TRACKING_SPOOL_PATH": "/tmp/x.sqlite3"},
        {"DEBUG_LOGGING": "false", "DATABRICKS_SERVER_HOSTNAME": "adb-1.azuredatabricks.net",
         "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/abc", "DATABRICKS_ACCESS_TOKEN": "dapi123"},
    )
    assert settings.debug_logging is True
    assert settings.spool_path == Path("/tmp/x.sqlite3")
    assert settings.databricks_server_hostname == "adb-1.azuredatabricks.net"
    assert settings.warehouse_configured


def test_typed_values():
    settings = Settings.from_sources({"ADMIN_EMAILS": " A@x.com, b@y.org ,", "FLUSH_BATCH_SIZE": "500",
                                      "TRACKING_SPOOL_SYNCHRONOUS": "FULL", "TRUSTED_USER_HEADER": ""})
    assert settings.admin_emails == ("a@x.com", "b@y.org")
    assert settings.flush_batch_size == 500
    assert settings.spool_synchronous == "FULL"
    assert settings.trusted_user_header is None


@pytest.mark.parametrize(("name", "value"), [("DEBUG_LOGGING", "maybe"), ("FLUSH_BATCH_SIZE", "many"),
                                             ("TRACKING_SPOOL_SYNCHRONOUS", "OFF")])
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_sources({name: value})


def test_warehouse_id_gives_the_http_path():
    settings = Settings.from_sources({"DATABRICKS_SERVER_HOSTNAME": "adb-1.net", "DATABRICKS_WAREHOUSE_ID": "abc123",
                                      "DATABRICKS_CLIENT_ID": "sp", "DATABRICKS_CLIENT_SECRET": "s3cret"})
    assert settings.warehouse_http_path == "/sql/1.0/warehouses/abc123"
    assert settings.warehouse_configured
    assert Settings(databricks_http_path="/x", databricks_warehouse_id="y").warehouse_http_path == "/x"


def test_databricks_apps_host_variable_is_the_fallback_hostname():
    assert Settings.from_sources({"DATABRICKS_HOST": "https://adb-9.azuredatabricks.net/"}).databricks_server_hostname \
        == "adb-9.azuredatabricks.net"
    both = Settings.from_sources({"DATABRICKS_HOST": "https://a.net", "DATABRICKS_SERVER_HOSTNAME": "b.net"})
    assert both.databricks_server_hostname == "b.net"
