"""app.yaml and the deploy doc agree: every variable app.yaml sets is a setting of the app and is in the doc's table,
every resource key it refers to is one the doc tells you to create, and the Apps-provided variables are left alone."""

from __future__ import annotations

import dataclasses

import yaml

from ctg_app.settings import Settings
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


def test_admin_emails_and_the_warehouse_waits_are_configured() -> None:
    env = {entry["name"]: entry for entry in APP["env"]}
    assert env["ADMIN_EMAILS"]["valueFrom"] == "admin-emails"
    assert float(env["WAREHOUSE_START_TIMEOUT_S"]["value"]) >= 60
    assert env["LLM_PROVIDER"]["value"] == "azure_openai"


def test_every_resource_key_is_in_the_doc_steps() -> None:
    keys = {entry["valueFrom"] for entry in APP["env"] if "valueFrom" in entry}
    assert keys >= {"sql-warehouse", "ctg-data-schema", "admin-emails"}
    missing = [key for key in sorted(keys) if f"| `{key}` |" not in DOC]
    assert missing == []
