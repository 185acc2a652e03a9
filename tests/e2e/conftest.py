"""Real-browser fixtures: Debian's chromium driven by the playwright package, the app as a real local server."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ctg_app" / "app.py"
ARTIFACTS = ROOT / "test-artifacts"


def _require_browser() -> None:
    """Skip locally when chromium or playwright is missing; under CI=true that is a failure."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install playwright; never `playwright install`)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test required under CI=true: {problem}")
        pytest.skip(f"browser test skipped: {problem}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Debian chromium (never a downloaded browser).

    Module-scoped on purpose: while playwright's sync API is open it leaves an event loop marked as running in this
    thread, which would make ``asyncio.run`` in later test modules fail."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppServer:
    """A running `streamlit run ctg_app/app.py`."""

    proc: subprocess.Popen
    port: int
    spool_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def events(self) -> list[tuple[str, str, str]]:
        """(action, user, status) spooled so far, in insertion order."""
        if not self.spool_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.spool_path}?mode=ro", uri=True, timeout=5)
        try:
            return [tuple(r) for r in conn.execute("SELECT action, user, status FROM events ORDER BY seq")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def wait_for_action(self, action: str, timeout: float = 15.0) -> list[tuple[str, str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if any(e[0] == action for e in events):
                return events
            time.sleep(0.1)
        raise AssertionError(f"{action} not recorded; spool has {self.events()}")

    def stop(self) -> None:
        """Stop by PID: SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture(scope="session")
def sample_db_e2e(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ctg_app.chatbot.data.sample import ensure_sample_db

    return ensure_sample_db(tmp_path_factory.mktemp("e2e-db") / "ctg-sample.sqlite3")


@pytest.fixture
def start_app(tmp_path: Path, sample_db_e2e: Path) -> Iterator[Callable[..., AppServer]]:
    """Start the app as a real server on loopback with a private spool; stopped by PID at teardown."""
    servers: list[AppServer] = []

    def start(**extra_env: str) -> AppServer:
        port = _free_port()
        spool = tmp_path / f"spool-{port}.sqlite3"
        log_path = tmp_path / f"streamlit-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "CTG_", "LLM_", "DATABRICKS_"))}
        env.pop("TRUSTED_USER_HEADER", None)
        env.update(TRACKING_SPOOL_PATH=str(spool), CTG_SAMPLE_DB_PATH=str(sample_db_e2e),
                   XDG_STATE_HOME=str(tmp_path / "state"), PYTHONPATH=str(ROOT), **extra_env)
        cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        server = AppServer(proc, port, spool, log_path, env)
        servers.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{server.url}_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        return server
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("streamlit did not become healthy within 60 s")

    yield start
    for server in servers:
        server.stop()


def full_page_screenshot(page, name: str) -> None:
    """The whole page into ``test-artifacts/name``. Streamlit scrolls inside its main column, so the viewport is grown
    to that column's content for the shot (measuring every element instead gave 9040 px of mostly blank page)."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("(() => { const m = document.querySelector('.stMain'); "
                           "return m.scrollHeight + window.innerHeight - m.clientHeight; })()")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 12000))})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.set_viewport_size(size)
