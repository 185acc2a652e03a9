"""The app on the Databricks Apps runtime: a venv seeded with what the Apps image pre-installs, then
``pip install -r requirements.txt`` exactly as Apps runs it; in that venv the app's first page (AppTest), OAuth M2M
to the fake warehouse and a flush. A second venv holds setup.cfg's floors and runs the same checks, so every floor
is a version the code was seen working with.

Marked ``apps_runtime`` (part of the suite and of CI; each build is capped, the pip cache makes repeats fast).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from fake_databricks import FakeWarehouse
from tests.runtime.venvs import APPS_PREINSTALLED, FLOOR_PACKAGES, ROOT, apps_venv, floors, floors_venv, run_client_checks

pytestmark = [pytest.mark.apps_runtime, pytest.mark.timeout(900)]

SP_ID, SP_SECRET = "ctg-app-sp", "apps-sp-secret-" + "7" * 24
TABLE = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"


@pytest.fixture
def venv_dir(tmp_path: Path) -> Iterator[Path]:
    """Where a test builds its venv; removed afterwards (each is a few hundred MB)."""
    yield tmp_path
    for child in tmp_path.iterdir():
        if child.is_dir() and child.name.endswith(("-venv", "-venv-src")):
            shutil.rmtree(child, ignore_errors=True)


def _pins(path: Path) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", path.read_text(), re.M)}


def test_requirements_pin_every_floor_package_at_or_above_its_floor_and_the_provider_extra() -> None:
    pins = _pins(ROOT / "requirements.txt")
    for name, floor in floors().items():
        assert name in pins, f"requirements.txt does not pin {name}"
        assert Version(pins[name]) >= Version(floor), (name, pins[name], floor)
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    assert ".[openai]" in lines and "openai" in pins  # app.yaml: LLM_PROVIDER=azure_openai


def test_floors_are_above_the_apps_image_where_it_breaks_us() -> None:
    """Apps' streamlit 1.38 lacks width="stretch" and its connector 3.4 has no user_agent_entry: a floor below those
    would let pip keep them. (The venv tests below show what each version does.)"""
    image = dict(spec.split("==") for spec in APPS_PREINSTALLED)
    assert Version(floors()["streamlit"]) > Version(image["streamlit"])
    assert Version(floors()["databricks-sql-connector"]) > Version(image["databricks-sql-connector"])


def _check(venv: Path, tmp_path: Path) -> tuple[dict, FakeWarehouse]:
    with FakeWarehouse(oauth_clients={SP_ID: SP_SECRET}) as wh:
        result = run_client_checks(venv, wh.oauth_env(), tmp_path / "work")
        agents = dict(wh.user_agents)
        scopes = list(wh.oauth.scopes_requested)
        rows = wh.query(f"SELECT action FROM {TABLE}")
    # the warehouse saw the app: every Thrift call names ctg-app; the service principal asked for all-apis
    assert agents and all(f"ctg-app/{result['versions']['ctg-app']}" in agent for agent in agents), agents
    assert scopes == ["all-apis"]
    assert result["select_1"] and result["delivered"] == len(rows) >= 5
    assert {"app_start", "generate_question", "sql_query", "execute_sql"} <= {r[0] for r in rows}
    return result, wh


def test_app_runs_on_the_apps_image_after_pip_install_r_requirements(venv_dir: Path) -> None:
    venv = apps_venv(venv_dir / "apps-venv")
    result, _ = _check(venv, venv_dir)
    pins = _pins(ROOT / "requirements.txt")
    for name in FLOOR_PACKAGES + ("openai",):
        assert result["versions"][name] == pins[name], (name, result["versions"][name])  # not the image's version


def test_app_runs_with_every_floor_of_setup_cfg(venv_dir: Path) -> None:
    venv = floors_venv(venv_dir / "floors-venv")
    result, _ = _check(venv, venv_dir)
    for name, floor in floors().items():
        assert Version(result["versions"][name]) == Version(floor), (name, result["versions"][name], floor)
