"""Build a venv the way Databricks Apps does and run the app's side of the runtime checks in it.

Databricks Apps starts from an image with some packages pre-installed (:data:`APPS_PREINSTALLED`) and runs
``pip install -r requirements.txt`` in the uploaded source folder. :func:`apps_venv` repeats exactly that; 
:func:`floors_venv` instead installs ``.[openai]`` with the floors of :data:`FLOOR_PACKAGES` taken from setup.cfg
(``>=X`` becomes ``==X``). :func:`run_client_checks` then runs ``client_checks.py`` in the venv against a fake warehouse
that runs in *this* process (its Thrift server needs a recent connector, the app's side must not share it).

Also a command line, used by ``scripts/check-floors.sh``::

    python -m tests.runtime.venvs floors [pkg==version ...]   # overrides: show that the release below a floor fails
    python -m tests.runtime.venvs apps [--requirements FILE]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).resolve().parent / "client_checks.py"

# What the Databricks Apps image ships (the versions our app meets unless requirements.txt moves them).
APPS_PREINSTALLED = ("databricks-sdk==0.33.0", "databricks-sql-connector==3.4.0", "streamlit==1.38.0",
                     "plotly==5.24.1")
# The packages whose setup.cfg floor the floors check holds down.
FLOOR_PACKAGES = ("databricks-sdk", "databricks-sql-connector", "streamlit", "plotly")
# What Apps uploads and pip needs to install `.` (a copy: building `.` must not write into the checkout).
SOURCE_FILES = ("ctg_app", "setup.cfg", "pyproject.toml", "README.md", "requirements.txt", "app.yaml")


def _pip(venv: Path, *args: str, cwd: Path, timeout: float) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def copy_source(dest: Path, requirements: Path | None = None) -> Path:
    """The app's upload: the files Apps gets (``requirements`` replaces requirements.txt when given)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SOURCE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    if requirements is not None:
        shutil.copy2(requirements, dest / "requirements.txt")
    return dest


def _new_venv(path: Path, timeout: float) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=timeout)
    return path


def apps_venv(path: Path, *, requirements: Path | None = None, seed: Iterable[str] = APPS_PREINSTALLED,
              timeout: float = 600) -> Path:
    """A venv seeded with ``seed``, then ``pip install -r requirements.txt`` in a copy of the source, as Apps does."""
    source = copy_source(path.parent / f"{path.name}-src", requirements)
    _new_venv(path, timeout)
    _pip(path, *seed, cwd=source, timeout=timeout)
    _pip(path, "-r", "requirements.txt", cwd=source, timeout=timeout)
    return path


def floors(setup_cfg: Path = ROOT / "setup.cfg", packages: Iterable[str] = FLOOR_PACKAGES) -> dict[str, str]:
    """``{package: floor}`` from setup.cfg's ``package>=floor`` lines."""
    text = setup_cfg.read_text()
    out = {}
    for name in packages:
        match = re.search(rf"^\s*{re.escape(name)}>=([0-9][0-9.]*)", text, re.M)
        if not match:
            raise ValueError(f"no floor for {name} in {setup_cfg}")
        out[name] = match.group(1)
    return out


def floors_venv(path: Path, *, overrides: Mapping[str, str] | None = None, timeout: float = 600) -> Path:
    """A fresh venv with ``.[openai]`` installed while the floor packages are held at their floors.

    ``overrides`` (``{package: version}``) then replace single packages with ``pip install --no-deps`` — setup.cfg
    itself forbids a release below a floor, so that is the only way to try one."""
    source = copy_source(path.parent / f"{path.name}-src")
    constraints = source / "floors-constraints.txt"
    constraints.write_text("".join(f"{name}=={v}\n" for name, v in floors().items()))
    _new_venv(path, timeout)
    _pip(path, "-c", str(constraints), ".[openai]", cwd=source, timeout=timeout)
    if overrides:
        _pip(path, "--no-deps", *(f"{name}=={v}" for name, v in overrides.items()), cwd=source, timeout=timeout)
    return path


def client_env(warehouse_env: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """The environment for client_checks.py: this process's, minus every app setting, plus the fake's OAuth ones."""
    from ctg_app.settings import Settings
    import dataclasses

    ours = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    env = {k: v for k, v in os.environ.items()
           if k not in ours and not k.startswith(("DATABRICKS_", "PYTHON", "STREAMLIT_", "PYTEST_"))}
    env.update(warehouse_env)
    env.update(HOME=str(workdir), TRACKING_SPOOL_PATH=str(workdir / "spool.sqlite3"),
               CTG_SAMPLE_DB_PATH=str(workdir / "ctg-sample.sqlite3"), WAREHOUSE_TIMEOUT_S="5")
    return env


def run_client_checks(venv: Path, warehouse_env: Mapping[str, str], workdir: Path, timeout: float = 300) -> dict:
    """Run client_checks.py in ``venv``; its JSON result, or RuntimeError with the output."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(venv / "bin" / "python"), str(CLIENT)], cwd=workdir, env=client_env(warehouse_env, workdir),
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("CLIENT-RESULT "):
            return json.loads(line[len("CLIENT-RESULT "):])
    raise RuntimeError(f"client checks failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")


def main(argv: list[str]) -> int:
    """``floors [pkg==v ...]`` or ``apps [--requirements FILE]``: build the venv, run the checks, print the result."""
    from fake_databricks import FakeWarehouse

    mode, rest = (argv[0] if argv else "floors"), argv[1:]
    with tempfile.TemporaryDirectory(prefix=f"ctg-{mode}-") as tmp, \
            FakeWarehouse(oauth_clients={"ctg-app-sp": "sp-secret-" + "0" * 24}) as wh:
        venv = Path(tmp) / "venv"
        if mode == "floors":
            overrides = dict(arg.split("==", 1) for arg in rest)
            print("floors:", {**floors(), **overrides}, flush=True)
            floors_venv(venv, overrides=overrides)
        elif mode == "apps":
            req = Path(rest[rest.index("--requirements") + 1]) if "--requirements" in rest else None
            apps_venv(venv, requirements=req.resolve() if req else None)
        else:
            print(__doc__)
            return 2
        try:
            result = run_client_checks(venv, wh.oauth_env(), Path(tmp) / "work")
        except RuntimeError as exc:
            print(exc)
            print("RESULT: FAILED")
            return 1
        agents = sorted(wh.user_agents)
        print(json.dumps(result, indent=1))
        print("user agents seen:", agents, "scopes:", wh.oauth.scopes_requested)
        ok = all("ctg-app/" in a for a in agents) and set(wh.oauth.scopes_requested) == {"all-apis"}
        print("RESULT:", "OK" if ok else "FAILED (user agent or scope)")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
