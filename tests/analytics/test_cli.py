"""`ctg-app selftest` against the fake warehouse (as CI runs it) and `ctg-app usage-report`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from ctg_app.cli import main as cli_main
from ctg_app.tracking import track_error, track_user_action_simple


def _run_selftest(env_extra: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "TRACKING_"))}
    env.update(env_extra)
    env["TRACKING_SPOOL_PATH"] = str(tmp_path / "spool.sqlite3")
    env["WAREHOUSE_TIMEOUT_S"] = "3"
    return subprocess.run([sys.executable, "-m", "ctg_app.cli", "selftest"], env=env, capture_output=True, text=True,
                          timeout=120)


def test_selftest_against_fake_warehouse_process(fake_warehouse_process, tmp_path):
    proc = _run_selftest(fake_warehouse_process.env(), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in ("basic action tracking", "error tracking", "spool health", "delivery to the warehouse",
                 "usage statistics"):
        assert f"] {name}:" in out
    assert "[PASS] delivery to the warehouse" in out and "SELFTEST PASSED" in out
    assert "elevio-ctg-chatbot-vanna-selftest" in out


def test_selftest_wrong_token_fails_with_hint(fake_warehouse_process, tmp_path):
    env = fake_warehouse_process.env()
    env["DATABRICKS_ACCESS_TOKEN"] = "dapi-wrong-token-123"
    proc = _run_selftest(env, tmp_path)
    assert proc.returncode != 0
    assert "[FAIL] delivery to the warehouse" in proc.stdout
    assert "401" in proc.stdout and "check DATABRICKS_ACCESS_TOKEN" in proc.stdout
    assert "dapi-wrong-token-123" not in proc.stdout + proc.stderr
    assert "SELFTEST FAILED" in proc.stdout


def test_selftest_offline_passes_and_skips_delivery(tracking_spool, capsys):
    assert cli_main(["selftest"]) == 0
    out = capsys.readouterr().out
    assert "[SKIP] delivery to the warehouse" in out and "SELFTEST PASSED" in out


def test_selftest_events_do_not_pollute_reports(tracking_spool, capsys):
    from ctg_app.tracking.analytics.stats import get_usage_stats

    cli_main(["selftest"])
    assert get_usage_stats(days=1).total_events == 0


def test_usage_report_formats(tracking_spool, capsys):
    track_user_action_simple("a@x", "generate_question")
    track_user_action_simple("a@x", "execute_sql")
    track_error("b@x", "sql_error", "bad")
    assert cli_main(["usage-report"]) == 0
    out = capsys.readouterr().out
    assert "events       3" in out and "sql_error" in out
    assert cli_main(["usage-report", "--report", "popular_actions", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"] == "popular_actions" and data["source"] == "spool"
    assert {r["action"]: r["count"] for r in data["rows"]} == {"generate_question": 1, "execute_sql": 1, "sql_error": 1}
    assert cli_main(["usage-report", "--report", "error_analysis", "--format", "csv", "--user", "b@x"]) == 0
    assert capsys.readouterr().out.splitlines() == ["action,error_count", "sql_error,1"]
    assert cli_main(["usage-report", "--report", "all", "--days", "3"]) == 0
    assert "Question → download funnel" in capsys.readouterr().out
    assert cli_main(["usage-report", "--report", "nope"]) == 2
