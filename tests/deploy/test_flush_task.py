"""The flush job's entry point (jobs/flush_spool_task.py): task parameters become flush-spool's settings, secrets
and unknown names are refused, and flush-spool runs with the rest of the arguments."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from .bundle import ROOT, load_bundle

SPEC = importlib.util.spec_from_file_location("flush_spool_task", ROOT / "jobs" / "flush_spool_task.py")
task = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(task)


def test_settings_and_arguments_are_split_at_the_double_dash():
    settings, arguments = task.split_arguments(["TRACKING_TABLE=c.s.t", "DATABRICKS_WAREHOUSE_ID=abc", "--",
                                                "--json", "--status"])
    assert settings == {"TRACKING_TABLE": "c.s.t", "DATABRICKS_WAREHOUSE_ID": "abc"}
    assert arguments == ["--json", "--status"]


@pytest.mark.parametrize("item, message", [
    ("NOT_A_SETTING=1", "not a setting: 'NOT_A_SETTING'"),
    ("--json", "not a setting"),
    ("DATABRICKS_CLIENT_SECRET=s3cr3t-value", "DATABRICKS_CLIENT_SECRET is a secret"),
])
def test_unknown_names_and_secrets_are_refused_without_echoing_a_value(item, message):
    with pytest.raises(SystemExit, match=message) as caught:
        task.split_arguments([item, "--", "--status"])
    assert "s3cr3t-value" not in str(caught.value)


def test_every_parameter_the_bundle_passes_is_accepted():
    parameters = load_bundle().resources["jobs"]["flush_spool"]["tasks"][0]["spark_python_task"]["parameters"]
    settings, arguments = task.split_arguments(parameters)
    assert {"TRACKING_TABLE", "DATABRICKS_WAREHOUSE_ID", "TRACKING_PARK_VOLUME", "DATABRICKS_HOST"} <= set(settings)
    assert arguments == ["--json"]


def test_main_sets_the_settings_and_runs_flush_spool(tracking_spool, monkeypatch, capsys):
    from ctg_app.tracking import track_user_action_simple

    track_user_action_simple("anna@eleviogroup.com", "app_start")  # one pending event in this spool
    monkeypatch.delenv("TRACKING_SPOOL_PATH")
    monkeypatch.setattr(os, "environ", dict(os.environ))  # main() writes the settings into the environment
    code = task.main([f"TRACKING_SPOOL_PATH={tracking_spool.path}", "TRACKING_TABLE=c.s.central_app_usage", "--",
                      "--status", "--json"])
    assert code == 0
    status = json.loads(capsys.readouterr().out)
    assert os.environ["TRACKING_TABLE"] == "c.s.central_app_usage"
    assert status["pending"] == 1  # flush-spool read the spool named by the parameter
