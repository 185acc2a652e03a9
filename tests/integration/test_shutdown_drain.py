"""Drain on shutdown (issue 11, item 2) with the real launcher (``python -m ctg_app.serve``, Streamlit in-process) as
a subprocess sent SIGTERM: every event recorded before the signal ends up in the warehouse or parked on the volume,
and the process exits within TRACKING_DRAIN_TIMEOUT_S. Also: the flusher starts with the server, before any browser
session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ctg_app.settings import reload_settings
from ctg_app.tracking.delivery.flush import Flusher
from ctg_app.tracking.recording.spool import Spool
from tests.flush.conftest import fill, make_events, warehouse_ids

ROOT = Path(__file__).resolve().parents[2]
VOLUME = "/Volumes/main/ops/usage/ctg-app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not met in {timeout_s} s")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture
def serve(tmp_path):
    """Start ``python -m ctg_app.serve`` with extra environment; yields (start function); kills leftovers by PID."""
    procs: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
        port = free_port()
        full = {**os.environ, "CTG_SAMPLE_DB_PATH": str(tmp_path / "sample.sqlite3"), "BACKGROUND_FLUSH": "true",
                "BACKGROUND_FLUSH_INTERVAL_S": "3600", "WAREHOUSE_TIMEOUT_S": "2", **env}
        proc = subprocess.Popen([sys.executable, "-m", "ctg_app.serve", "--server.port", str(port),
                                 "--server.address", "127.0.0.1"], cwd=ROOT, env=full,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        wait_for(lambda: healthy(port) or proc.poll() is not None, 60, "server start")
        assert proc.poll() is None, proc.communicate()[0]
        return proc, port

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def terminate(proc: subprocess.Popen, limit_s: float) -> tuple[float, str]:
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=limit_s + 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise AssertionError(f"still running {limit_s + 5} s after SIGTERM:\n{output[-3000:]}")
    return time.monotonic() - sent, output


def test_flusher_starts_with_the_server_and_sigterm_drains_everything_into_the_warehouse(fake_warehouse, tmp_path,
                                                                                         serve):
    wh = fake_warehouse
    spool_path = tmp_path / "spool.sqlite3"
    spool = Spool(spool_path)
    before = make_events(100, prefix="before")
    fill(spool, before)
    proc, _ = serve({**wh.env(), "TRACKING_SPOOL_PATH": str(spool_path), "TRACKING_DRAIN_TIMEOUT_S": "8"})

    # No browser session has opened, yet the flusher ships (it started with the server).
    def shipped():
        try:
            return len(warehouse_ids(wh)) == 100
        except Exception:  # table not created yet
            return False
    try:
        wait_for(shipped, 30, "events shipped without any session")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[0][-4000:]) from None

    # Recorded while the server runs; the next periodic flush is an hour away: only the drain can ship them.
    during = make_events(3000, prefix="during")
    fill(spool, during)
    seconds, output = terminate(proc, 8)
    print(f"SIGTERM to exit: {seconds:.2f} s; " + "".join(l for l in output.splitlines(True) if "drain on" in l))
    assert seconds < 8, output[-3000:]
    ids = warehouse_ids(wh)
    assert sorted(ids) == sorted(e[0] for e in before + during)  # each exactly once
    assert spool.counts()["pending"] == 0
    assert "drain on shutdown: 3000 events delivered" in output


def test_sigterm_during_an_outage_parks_everything_within_the_deadline_and_a_new_container_delivers_it(
        fake_warehouse, tmp_path, serve, monkeypatch):
    wh = fake_warehouse
    spool_path = tmp_path / "spool.sqlite3"
    spool = Spool(spool_path)
    env = {**wh.env(), "TRACKING_SPOOL_PATH": str(spool_path), "TRACKING_DRAIN_TIMEOUT_S": "5",
           "TRACKING_PARK_VOLUME": VOLUME + "/"}
    wh.faults.next(100_000, method="ExecuteStatement", hang=True, hang_timeout=60)  # the warehouse hangs
    proc, _ = serve(env)
    events = make_events(2500, prefix="outage")
    fill(spool, events)
    seconds, output = terminate(proc, 5)
    print(f"SIGTERM to exit: {seconds:.2f} s; " + "".join(l for l in output.splitlines(True) if "drain on" in l))
    assert seconds < 5 + 1.5, output[-3000:]  # the drain budget, plus interpreter exit
    assert spool.counts()["pending"] == 0 and spool.counts()["parked"] == 2500, output[-3000:]
    assert wh.files.list_files(VOLUME + "/")

    # The container is gone (its spool too); the warehouse is back; a new instance's flusher delivers the segments.
    wh.faults.clear()
    for key, value in {**env, "TRACKING_SPOOL_PATH": str(tmp_path / "new" / "spool.sqlite3")}.items():
        monkeypatch.setenv(key, value)
    report = Flusher(reload_settings()).run()
    assert report.unparked == 2500 and report.inserted == 2500
    ids = warehouse_ids(wh)
    assert len(ids) == 2500 and sorted(ids) == sorted(e[0] for e in events)
    assert wh.files.list_files(VOLUME + "/") == []


def test_the_databricks_packages_stay_importable_after_streamlit_puts_ctg_app_on_sys_path():
    """``streamlit run ctg_app/app.py`` puts ``ctg_app/`` first on sys.path: no module there may shadow a dependency
    (``ctg_app/databricks`` once hid the connector and the SDK from the app's own imports)."""
    app_dir = ROOT / "ctg_app"
    for name in ("databricks", "streamlit", "vanna", "sqlglot", "pandas", "plotly", "openpyxl", "sqlite_utils"):
        assert not (app_dir / name).exists() and not (app_dir / f"{name}.py").exists(), name
    code = ("import sys\n"
            f"sys.path.insert(0, {str(app_dir)!r})  # what streamlit's bootstrap does\n"
            "import databricks.sql, databricks.sdk\n"
            "print(databricks.sql.__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "databricks.sql", result.stderr[-2000:]


def test_sigterm_with_a_hung_warehouse_and_no_volume_exits_in_time_and_says_what_is_left(fake_warehouse, tmp_path,
                                                                                          serve):
    wh = fake_warehouse
    spool_path = tmp_path / "spool.sqlite3"
    wh.faults.next(100_000, method="ExecuteStatement", hang=True, hang_timeout=60)
    proc, _ = serve({**wh.env(), "TRACKING_SPOOL_PATH": str(spool_path), "TRACKING_DRAIN_TIMEOUT_S": "3"})
    fill(Spool(spool_path), make_events(40, prefix="stuck"))
    seconds, output = terminate(proc, 3)
    assert seconds < 3 + 1.5, output[-3000:]
    assert "40 left pending in the local spool - lost if this disk does not survive the restart" in output
    assert Spool(spool_path).counts()["pending"] == 40  # still there for a persistent disk's next flusher
