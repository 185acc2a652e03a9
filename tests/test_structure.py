"""The layout's promises, checked: the recorder imports nothing from delivery, analytics or the fake warehouse; the
product never imports the fake warehouse; the wheel built from setup.cfg holds the product only."""

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


def _imports(path: Path, *, module_level_only: bool, package: str | None = None) -> list[str]:
    """Absolute names imported by ``path`` (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = list(ast.walk(tree))
    if module_level_only:  # also imports inside module-level if/try blocks (not inside functions or classes)
        stack, nodes = list(tree.body), []
        while stack:
            node = stack.pop()
            nodes.append(node)
            if isinstance(node, (ast.If, ast.Try)):
                stack.extend(ast.iter_child_nodes(node))
    package = package or ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module or "")
    return names


def test_recording_imports_nothing_from_delivery_analytics_or_the_fake():
    forbidden = ("ctg_app.tracking.delivery", "ctg_app.tracking.analytics", "fake_databricks",
                 "ctg_app.tracking.selftest", "ctg_app.warehouse")
    files = sorted(RECORDING.glob("*.py"))
    assert len(files) >= 10
    offenders = {f"{path.name}: {name}" for path in files for name in _imports(path, module_level_only=True)
                 if name.startswith(forbidden)}
    assert not offenders, offenders


def test_the_import_check_sees_relative_and_nested_imports(tmp_path):
    # The checker itself can fail: a module-level relative import of delivery inside a try block is found, and an
    # import inside a function counts only for the whole-product check.
    module = tmp_path / "probe.py"
    module.write_text("try:\n    from ..delivery import leases\nexcept ImportError:\n    pass\n"
                      "def f():\n    import fake_databricks\n")
    found = _imports(module, module_level_only=True, package="ctg_app.tracking.recording")
    assert "ctg_app.tracking.delivery" in found and "fake_databricks" not in found
    assert "fake_databricks" in _imports(module, module_level_only=False, package="ctg_app.tracking.recording")


def test_the_product_never_imports_the_fake_warehouse():
    offenders = {f"{path.relative_to(ROOT)}: {name}" for path in sorted(PACKAGE.rglob("*.py"))
                 for name in _imports(path, module_level_only=False) if name.startswith("fake_databricks")}
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
