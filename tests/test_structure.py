"""The layout's promises, checked over every import (module level and inside functions alike): each module imports
only from its own layer or the ones below it; Streamlit is imported only by the UI; the product never imports the
fake warehouse; the wheel built from setup.cfg holds the product only."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ctg_app"
RECORDING = PACKAGE / "tracking" / "recording"

#: The layers, bottom first, and the layers each may import from (besides its own). A module belongs to the layer of
#: the longest name that prefixes it (``ctg_app.tracking`` alone is the tracking facade, which loads analytics on
#: first use). Recording and the warehouse are side by side: neither imports the other.
LAYERS: dict[str, tuple[str, ...]] = {
    "ground floor": ("ctg_app.errors", "ctg_app.error_facts", "ctg_app.exit_codes", "ctg_app.redact",
                     "ctg_app.settings"),
    "warehouse": ("ctg_app.warehouse", "ctg_app.console"),
    "tracking.recording": ("ctg_app.tracking.recording",),
    "tracking.delivery": ("ctg_app.tracking.delivery",),
    "tracking.analytics": ("ctg_app.tracking.analytics",),
    "tracking facade": ("ctg_app.tracking", "ctg_app.tracking.selftest"),
    "chatbot": ("ctg_app.chatbot",),
    "ui and entry points": ("ctg_app.ui", "ctg_app.app", "ctg_app.serve", "ctg_app.cli"),
}
MAY_IMPORT: dict[str, frozenset[str]] = {
    "ground floor": frozenset(),
    "warehouse": frozenset({"ground floor"}),
    "tracking.recording": frozenset({"ground floor"}),
    "tracking.delivery": frozenset({"ground floor", "warehouse", "tracking.recording"}),
    "tracking.analytics": frozenset({"ground floor", "warehouse", "tracking.recording", "tracking.delivery"}),
    "tracking facade": frozenset({"ground floor", "warehouse", "tracking.recording", "tracking.delivery",
                                  "tracking.analytics"}),
    "chatbot": frozenset({"ground floor", "warehouse", "tracking.recording", "tracking facade"}),
    "ui and entry points": frozenset(set(LAYERS) - {"ui and entry points"}),
}

#: Where Streamlit may be imported, and why.
STREAMLIT_ALLOWED: dict[str, str] = {
    "ctg_app/ui/": "the pages and their widgets",
    "ctg_app/app.py": "the Streamlit entry point",
    "ctg_app/serve.py": "runs Streamlit's server (streamlit.web.bootstrap)",
    "ctg_app/settings.py": "reads st.secrets, only when Streamlit is already loaded",
    "ctg_app/tracking/recording/identity.py": "reads the signed-in user from the Streamlit request, when loaded",
}
#: Modules allowed, for now, to import Streamlit outside the UI (none since the typed pipeline). The test fails on an
#: entry that no longer imports Streamlit, so the list cannot go stale.
STREAMLIT_OUTSIDE_UI_TODO: frozenset[str] = frozenset()


def _imports(path: Path, *, package: str | None = None) -> list[str]:
    """Absolute names imported anywhere in ``path``: at module level, in if/try blocks and inside functions and
    classes (relative imports resolved against its package; ``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = package or ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(name: str) -> str | None:
    """The layer of :data:`LAYERS` module ``name`` lives in (None: not a module of the product)."""
    found = [(len(prefix), layer) for layer, prefixes in LAYERS.items() for prefix in prefixes
             if name == prefix or name.startswith(prefix + ".")]
    return max(found)[1] if found else None


def _forbidden_imports(paths: list[Path], root: Path = ROOT) -> set[str]:
    """``file (layer) imports name (layer)`` for every import against :data:`MAY_IMPORT`."""
    offenders = set()
    for path in paths:
        module = _module_name(path, root)
        here = _layer(module)
        assert here is not None, f"{path.relative_to(root)} is in no layer of LAYERS: add it"
        for name in _imports(path, package=module.rpartition(".")[0] if path.name != "__init__.py" else module):
            there = _layer(name)
            if there is not None and there != here and there not in MAY_IMPORT[here]:
                offenders.add(f"{path.relative_to(root)} ({here}) imports {name} ({there})")
    return offenders


def _streamlit_importers(paths: list[Path]) -> set[str]:
    return {path.relative_to(ROOT).as_posix() for path in paths
            if any(name == "streamlit" or name.startswith("streamlit.") for name in _imports(path))}


def test_every_module_imports_only_from_the_layers_below_it():
    paths = [path for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "__init__.py"]  # that one is empty
    assert len(paths) >= 60
    offenders = _forbidden_imports(paths)
    assert not offenders, "\n".join(sorted(offenders))


def test_the_layer_check_sees_imports_inside_functions_and_blocks(tmp_path):
    # The checker itself can fail: a probe in the recorder importing the warehouse inside a function, the tracking
    # facade inside a try block and delivery by a relative import inside a method is reported three times; its
    # module-level import from the ground floor is not.
    probe = tmp_path / "ctg_app" / "tracking" / "recording" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ctg_app.errors import LlmError\n"
                     "try:\n    from ctg_app import tracking\nexcept ImportError:\n    pass\n"
                     "def f():\n    from ctg_app.warehouse.errors import classify_error\n"
                     "class C:\n    def g(self):\n        from ..delivery import leases\n")
    offenders = _forbidden_imports([probe], root=tmp_path)
    assert {line.split(" imports ")[1] for line in offenders} == {
        "ctg_app.tracking (tracking facade)",
        "ctg_app.warehouse.errors (warehouse)", "ctg_app.warehouse.errors.classify_error (warehouse)",
        "ctg_app.tracking.delivery (tracking.delivery)", "ctg_app.tracking.delivery.leases (tracking.delivery)",
    }


def test_streamlit_is_imported_only_by_the_ui():
    importers = _streamlit_importers(sorted(PACKAGE.rglob("*.py")))
    outside = {path for path in importers if not any(
        path == allowed or (allowed.endswith("/") and path.startswith(allowed)) for allowed in STREAMLIT_ALLOWED)}
    assert outside <= STREAMLIT_OUTSIDE_UI_TODO, f"Streamlit imported outside the UI: {sorted(outside - STREAMLIT_OUTSIDE_UI_TODO)}"
    fixed = STREAMLIT_OUTSIDE_UI_TODO - outside
    assert not fixed, f"no longer import Streamlit: remove from STREAMLIT_OUTSIDE_UI_TODO: {sorted(fixed)}"


def test_the_streamlit_check_sees_an_import_inside_a_function(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def table_config():\n    from streamlit import column_config\n")
    assert "streamlit" in _imports(probe, package="ctg_app.chatbot.present")


def test_recording_imports_nothing_from_delivery_analytics_or_the_fake():
    forbidden = ("ctg_app.tracking.delivery", "ctg_app.tracking.analytics", "fake_databricks",
                 "ctg_app.tracking.selftest", "ctg_app.warehouse")
    files = sorted(RECORDING.glob("*.py"))
    assert len(files) >= 10
    offenders = {f"{path.name}: {name}" for path in files for name in _imports(path) if name.startswith(forbidden)}
    assert not offenders, offenders


def test_warehouse_and_console_import_nothing_from_tracking():
    files = sorted((PACKAGE / "warehouse").glob("*.py")) + [PACKAGE / "console.py"]
    offenders = {f"{path.name}: {name}" for path in files for name in _imports(path)
                 if name.startswith(("ctg_app.tracking", "ctg_app.chatbot", "ctg_app.ui"))}
    assert not offenders, offenders


def test_the_product_never_imports_the_fake_warehouse():
    offenders = {f"{path.relative_to(ROOT)}: {name}" for path in sorted(PACKAGE.rglob("*.py"))
                 for name in _imports(path) if name.startswith("fake_databricks")}
    assert not offenders, offenders


def test_wheel_from_setup_cfg_holds_the_product_only(tmp_path):
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-v",
         "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=240,
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-3000:]
    assert "Package would be ignored" not in log
    (wheel,) = out.glob("ctg_app-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ctg_app/chatbot/data/training.toml" in names
    assert "ctg_app/tracking/recording/event.py" in names and "ctg_app/warehouse/connection.py" in names
    assert not [n for n in names if "fake_databricks" in n or n.startswith(("tests/", "tools/", "benchmarks/"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "flush-spool" in scripts and "fake-databricks" not in scripts
