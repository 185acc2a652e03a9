"""pytest fixtures for the fake warehouse (enable with ``pytest_plugins = ["fake_databricks.pytest_plugin"]``).

- ``fake_warehouse``: a fresh in-process server (in-memory DuckDB) per test, closed afterwards.
- ``fake_warehouse_env``: the same, with ``os.environ`` patched by ``wh.env()``; yields the warehouse.
- ``fake_warehouse_process``: ``python -m fake_databricks.cli --port 0`` as a subprocess; yields a
  :class:`WarehouseProcess` (``.env()``, ``.pid``, ``.port``), stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator

import pytest

from . import FakeWarehouse


@dataclass
class WarehouseProcess:
    """A fake warehouse running in a child process."""

    proc: subprocess.Popen
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """Process id of the server."""
        return self.proc.pid

    @property
    def port(self) -> int:
        """TCP port the server listens on."""
        return int(self.variables["DATABRICKS_CONNECTION_URI"].split(":")[2].split("/")[0])

    def env(self) -> dict[str, str]:
        """The ``DATABRICKS_*`` variables the server printed."""
        return dict(self.variables)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait, then SIGKILL if needed; returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        return self.proc.returncode


def start_process(*args: str, timeout: float = 20.0) -> WarehouseProcess:
    """Start the CLI in a subprocess and wait for its ``export`` lines."""
    proc = subprocess.Popen([sys.executable, "-m", "fake_databricks.cli", "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True)
    wp = WarehouseProcess(proc)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("export "):
            name, _, value = line[len("export "):].strip().partition("=")
            wp.variables[name] = shlex.split(value)[0] if value else ""
            if "DATABRICKS_CONNECTION_URI" in wp.variables and (
                "--tls" not in args or "DATABRICKS_TLS_CA_FILE" in wp.variables):
                return wp
    wp.stop()
    raise RuntimeError("fake warehouse process did not print its environment")


@pytest.fixture
def fake_warehouse() -> Iterator[FakeWarehouse]:
    """A started in-process fake warehouse, closed after the test."""
    wh = FakeWarehouse().start()
    try:
        yield wh
    finally:
        wh.close()


@pytest.fixture
def fake_warehouse_env(fake_warehouse: FakeWarehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWarehouse]:
    """``fake_warehouse`` with its ``DATABRICKS_*`` variables set in ``os.environ``."""
    for k, v in fake_warehouse.env().items():
        monkeypatch.setenv(k, v)
    yield fake_warehouse


@pytest.fixture
def fake_warehouse_process() -> Iterator[WarehouseProcess]:
    """The fake warehouse as a separate process (stopped by PID at teardown)."""
    wp = start_process()
    try:
        yield wp
    finally:
        wp.stop()
