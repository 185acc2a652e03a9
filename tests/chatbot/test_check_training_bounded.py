"""``ctg-app check-training`` against an unreachable warehouse fails fast (one connection attempt), exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture
def silent_listener():
    """A port that accepts connections and never answers (a hung warehouse or a black-holing proxy)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        yield srv.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["refused", "no-answer"])
def test_unreachable_warehouse_fails_fast(kind, silent_listener, tmp_path):
    port = _closed_port() if kind == "refused" else silent_listener
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "CTG_", "TRACKING_"))}
    env.update({"CTG_DATA_SOURCE": "databricks", "CTG_DATA_SCHEMA": "ctg.sample",
                "DATABRICKS_CONNECTION_URI": f"http://127.0.0.1:{port}/sql/1.0/warehouses/x",
                "DATABRICKS_ACCESS_TOKEN": "dapi-fake-token", "WAREHOUSE_TIMEOUT_S": "1",
                "TRACKING_SPOOL_PATH": str(tmp_path / "spool.sqlite3")})
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ctg-app"), "check-training"], env=env, capture_output=True, text=True,
                          timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 4, done.stdout + done.stderr  # EXIT_UNAVAILABLE (1 before, after every question failed)
    assert "cannot reach the data source" in done.stdout
    assert done.stdout.count("FAIL") == 0  # not one failure line per trained question
    assert elapsed < 30, elapsed  # one attempt; before: 42 attempts (124 s refused at the default timeout)
