"""Shared fixtures: every test runs with an isolated environment, settings and tracker."""

from __future__ import annotations

import logging
import os

import pytest

from ctg_app.settings import Settings, get_settings
from ctg_app.tracking import Spool, get_tracker, health, set_tracker

# The local fake Databricks warehouse's fixtures (fake_warehouse, fake_warehouse_env, fake_warehouse_process).
pytest_plugins = ["fake_databricks.pytest_plugin"]

_SETTINGS_ENV = {f.metadata["env"] for f in Settings.__dataclass_fields__.values()}


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """No test reads the developer's configuration or writes to their home directory, and none leaves logging changed
    (the app configures the ``ctg_app`` logger when AppTest runs it in this process)."""
    app_logger = logging.getLogger("ctg_app")
    saved_logging = (app_logger.level, list(app_logger.handlers))
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    get_settings.cache_clear()
    set_tracker(None)
    health.take_dropped()
    health.failures.clear()
    yield
    set_tracker(None)
    get_settings.cache_clear()
    app_logger.setLevel(saved_logging[0])
    app_logger.handlers[:] = saved_logging[1]


@pytest.fixture
def tracking_spool(tmp_path, monkeypatch) -> Spool:
    """A fresh spool file that the process's tracker records into; ``.rows()`` lists what was recorded."""
    path = tmp_path / "spool" / "usage-spool.sqlite3"
    monkeypatch.setenv("TRACKING_SPOOL_PATH", str(path))
    get_settings.cache_clear()
    set_tracker(None)
    spool = get_tracker().spool
    yield spool
    spool.close()


def actions(spool: Spool) -> list[str]:
    """The recorded actions, in order."""
    return [row["action"] for row in spool.rows()]


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
