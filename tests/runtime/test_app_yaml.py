"""app.yaml, the bundle and the deploy doc agree: every variable app.yaml sets is a setting of the app and is in the
doc's table, every resource key it refers to is one the bundle's app declares (and the doc lists), every resource the
bundle gives the app is used, and the Apps-provided variables are left alone."""

from __future__ import annotations

import dataclasses

import yaml

from ctg_app.settings import Settings
from tests.deploy.bundle import load_bundle
from tests.runtime.venvs import ROOT

APP = yaml.safe_load((ROOT / "app.yaml").read_text())
DOC = (ROOT / "docs" / "deploy-databricks-apps.md").read_text()
SET_BY_APPS = {"DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"}


def test_every_app_yaml_variable_is_a_setting_and_documented() -> None:
    settings = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    names = [entry["name"] for entry in APP["env"]]
    assert len(names) == len(set(names))
    assert set(names) <= settings, set(names) - settings
    assert not set(names) & SET_BY_APPS
    missing = [name for name in names if f"`{name}`" not in DOC]
    assert missing == []


def test_admin_emails_and_the_schema_are_plain_config_and_the_warehouse_waits_are_configured() -> None:
    env = {entry["name"]: entry for entry in APP["env"]}
    # Plain values, not secrets: changing admins is an app.yaml edit and a deploy, not a put-secret and a restart.
    for name in ("ADMIN_EMAILS", "CTG_DATA_SCHEMA"):
        assert "valueFrom" not in env[name] and env[name]["value"], name
    assert all("@" in email for email in env["ADMIN_EMAILS"]["value"].split(","))
    assert len(env["CTG_DATA_SCHEMA"]["value"].split(".")) == 2
    assert float(env["WAREHOUSE_START_TIMEOUT_S"]["value"]) >= 60
    assert env["LLM_PROVIDER"]["value"] == "azure_openai"


def test_resource_backed_values_come_from_app_resources() -> None:
    env = {entry["name"]: entry for entry in APP["env"]}
    assert env["TRACKING_TABLE"].get("valueFrom") == "usage-table"  # no longer a literal table name
    assert env["DATABRICKS_WAREHOUSE_ID"].get("valueFrom") == "sql-warehouse"
    assert env["TRACKING_PARK_VOLUME"].get("valueFrom") == "usage-park-volume"


def test_every_value_from_names_a_resource_the_bundle_declares_and_every_resource_is_used() -> None:
    app = load_bundle().resources["apps"]["ctg_chatbot"]
    declared = {resource["name"] for resource in app["resources"]}
    used = {entry["valueFrom"] for entry in APP["env"] if "valueFrom" in entry}
    assert used - declared == set(), f"app.yaml refers to resources the bundle does not declare: {used - declared}"
    assert declared - used == set(), f"the bundle gives the app resources app.yaml never reads: {declared - used}"


def test_every_resource_key_is_in_the_doc() -> None:
    keys = {entry["valueFrom"] for entry in APP["env"] if "valueFrom" in entry}
    assert keys >= {"sql-warehouse", "usage-table", "usage-park-volume"}
    missing = [key for key in sorted(keys) if f"| `{key}` |" not in DOC]
    assert missing == []
