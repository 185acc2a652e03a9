"""No command echoes a secret: a token pasted into TRACKING_TABLE (or any setting) is redacted in all output.

Each command runs as its real console script in a subprocess, against the fake warehouse over the wire; stdout and
stderr (plain text, ``--json`` and tracebacks alike) must contain neither the pasted ``dapi…`` token nor the configured
access token (a value that is secret by configuration, not by shape).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctg_app.console import redacted_console, run_redacted
from ctg_app.settings import Settings
from ctg_app.redact import REDACTED
from ctg_app.tracking.recording.tracker import Tracker

PASTED_PAT = "dapi" + "0123456789abcdef" * 2  # a Databricks token pasted where the table name belongs
ACCESS_TOKEN = "fake-access-token-echo-7d1c"  # DATABRICKS_ACCESS_TOKEN: secret because of the setting, not its shape
BIN = Path(sys.executable).parent


@pytest.fixture(params=["pasted-pat", "pasted-access-token"])
def leaky_env(request, fake_warehouse, tmp_path):
    """The fake warehouse accepting ACCESS_TOKEN; TRACKING_TABLE holds a token; one event waits in the spool."""
    fake_warehouse.token = ACCESS_TOKEN
    spool = tmp_path / "spool.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "TRACKING_"))}
    env.update(fake_warehouse.env())
    pasted = PASTED_PAT if request.param == "pasted-pat" else ACCESS_TOKEN
    env.update({"DATABRICKS_ACCESS_TOKEN": ACCESS_TOKEN, "TRACKING_SPOOL_PATH": str(spool),
                "TRACKING_TABLE": pasted, "WAREHOUSE_TIMEOUT_S": "2"})
    Tracker(Settings(spool_path=spool)).record("app_start")  # something to deliver
    return env


def _run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def _assert_redacted(output: str) -> None:
    assert REDACTED in output, output  # the message is still there, only the secret is gone
    assert PASTED_PAT not in output and PASTED_PAT[4:] not in output
    assert ACCESS_TOKEN not in output


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["text", "json"])
def test_flush_spool_redacts(leaky_env, extra):
    code, output = _run([str(BIN / "flush-spool"), *extra], leaky_env)
    assert code == 3, output  # configuration error: the table name is not catalog.schema.table
    _assert_redacted(output)


def test_selftest_redacts(leaky_env):
    code, output = _run([str(BIN / "ctg-app"), "selftest"], leaky_env)
    assert code == 1, output  # delivery fails
    _assert_redacted(output)


def test_usage_report_redacts(leaky_env):
    code, output = _run([str(BIN / "ctg-app"), "usage-report", "--report", "all", "--source", "warehouse"], leaky_env)
    assert code == 3, output  # a clear configuration error, no traceback
    assert "Traceback" not in output
    _assert_redacted(output)


def test_an_unexpected_traceback_is_redacted(capsys, monkeypatch):
    monkeypatch.setenv("DATABRICKS_ACCESS_TOKEN", ACCESS_TOKEN)
    from ctg_app.settings import reload_settings

    reload_settings()

    def command() -> int:
        raise RuntimeError(f"table {PASTED_PAT} with {ACCESS_TOKEN}")

    assert run_redacted(command) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err
    _assert_redacted(err)


def test_a_secret_split_across_writes_is_still_redacted(capsys):
    with redacted_console():
        sys.stdout.write("token " + PASTED_PAT[:10])
        sys.stdout.write(PASTED_PAT[10:] + " end\n")
    assert capsys.readouterr().out == f"token {REDACTED} end\n"
