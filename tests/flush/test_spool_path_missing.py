"""``flush-spool`` with a TRACKING_SPOOL_PATH that does not exist: exit 3 and a clear message; no spool is created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("extra", [[], ["--json"], ["--status"], ["--dry-run"], ["--retry-dead"]])
def test_a_missing_spool_is_a_configuration_error(fake_warehouse, tmp_path, extra):
    wrong = tmp_path / "typo" / "usage-spool.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "TRACKING_"))}
    env.update(fake_warehouse.env())
    env["TRACKING_SPOOL_PATH"] = str(wrong)
    done = subprocess.run([str(BIN / "flush-spool"), *extra], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr  # 0 before ("delivered 0 events"), with an empty spool
    output = done.stdout + done.stderr
    assert str(wrong) in output and "does not exist" in output and "TRACKING_SPOOL_PATH" in output
    if extra == ["--json"]:
        assert json.loads(done.stdout)["outcome"] == "config"
    assert not wrong.exists() and not wrong.parent.exists()  # nothing created
    assert fake_warehouse.statement_count == 0  # and the warehouse was not bothered


def test_migrate_needs_no_spool(fake_warehouse, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "TRACKING_"))}
    env.update(fake_warehouse.env())
    env["TRACKING_SPOOL_PATH"] = str(tmp_path / "none.sqlite3")
    done = subprocess.run([str(BIN / "flush-spool"), "--migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / "none.sqlite3").exists()
