"""The command lines' contract (issue 21): ``--version`` on each command, argument errors exit 2 with a message and
no traceback, ``usage-report --source warehouse`` honoured, one exit-code table (code, README, docs), ``--json`` on
``selftest`` and ``check-training``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctg_app import cli
from ctg_app.exit_codes import EXIT_CODES, EXIT_UNAVAILABLE, EXIT_USAGE
from ctg_app.settings import reload_settings
from ctg_app.warehouse.connection import app_version

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("argv", [["flush-spool"], ["ctg-app"], ["ctg-app", "selftest"], ["ctg-app", "usage-report"],
                                  ["ctg-app", "check-training"]])
def test_every_command_has_version(argv, capsys) -> None:
    from ctg_app.tracking.delivery.cli import main as flush_spool

    with pytest.raises(SystemExit) as done:
        (flush_spool if argv[0] == "flush-spool" else cli.main)([*argv[1:], "--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip().endswith(app_version())


@pytest.mark.parametrize("argv", [["ctg-app", "usage-report", "--days", "-1"],
                                  ["ctg-app", "usage-report", "--days", "week"],
                                  ["flush-spool", "--batch-size", "0"],
                                  ["ctg-app", "usage-report", "--report", "nope"]])
def test_argument_errors_exit_2_with_a_message_and_no_traceback(argv, tmp_path) -> None:
    done = run(*argv, env={"TRACKING_SPOOL_PATH": str(tmp_path / "spool.sqlite3")})
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr + done.stdout and done.stderr.strip()


def test_usage_report_source_warehouse_is_honoured(fake_warehouse, monkeypatch, capsys) -> None:
    for key, value in fake_warehouse.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WAREHOUSE_TIMEOUT_S", "5")  # a loaded machine; a stopped warehouse refuses at once anyway
    reload_settings()
    assert cli.main(["usage-report", "--source", "warehouse", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"].startswith("warehouse")
    fake_warehouse.stop()  # down: the spool is not a silent stand-in (it was exit 0, source spool)
    assert cli.main(["usage-report", "--source", "warehouse"]) == EXIT_UNAVAILABLE
    assert "warehouse unavailable" in capsys.readouterr().err
    assert cli.main(["usage-report", "--report", "popular_actions", "--source", "warehouse"]) == EXIT_UNAVAILABLE


def test_one_exit_code_table_in_code_readme_and_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    doc = (ROOT / "docs" / "flush-spool.md").read_text()
    for code, meaning in EXIT_CODES.items():
        row = f"| {code} | {meaning} |"
        assert row in readme and row in doc, row


def test_selftest_and_check_training_speak_json(tracking_spool, capsys) -> None:
    assert cli.main(["selftest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and {c["name"] for c in report["checks"]} >= {"basic action tracking"}
    assert cli.main(["check-training", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["failed"] == 0 and checked["passed"] == len(checked["results"]) > 0
