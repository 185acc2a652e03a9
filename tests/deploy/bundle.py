"""Loads the Databricks bundle (``databricks.yml`` and its ``include`` files) the way ``databricks bundle`` merges it,
for the offline checks in this folder: no Databricks CLI is needed (none is on a package registry)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Bundle:
    """The merged configuration, and for every resource the file that declared it (paths are relative to it)."""

    root: dict[str, Any]
    files: list[Path]
    declared_in: dict[tuple[str, str], Path] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.root.get("resources", {})

    @property
    def variables(self) -> dict[str, Any]:
        return self.root.get("variables", {})

    def default(self, variable: str, target: str | None = None) -> Any:
        """A variable's value for ``target`` (its override there, else its default), references to other
        variables resolved."""
        value = self.variables[variable].get("default")
        if target:
            override = self.root.get("targets", {}).get(target, {}).get("variables", {}).get(variable)
            if override is not None:
                value = override
        if isinstance(value, str):
            value = REFERENCE.sub(lambda m: str(self.default(m.group(1)[4:], target))
                                  if m.group(1).startswith("var.") else m.group(0), value)
        return value

    def for_target(self, target: str) -> dict[str, dict[str, Any]]:
        """The resources as ``-t target`` deploys them: the target's ``resources`` merged over the base."""
        merged = copy.deepcopy(self.resources)
        override = self.root.get("targets", {}).get(target, {}).get("resources", {})
        for kind, items in override.items():
            for key, value in items.items():
                merged.setdefault(kind, {}).setdefault(key, {})
                _merge(merged[kind][key], value)
        return merged


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def load_bundle(root_dir: Path = ROOT) -> Bundle:
    """``databricks.yml`` with every file its ``include`` globs match; a resource declared twice is an error."""
    main = root_dir / "databricks.yml"
    root = yaml.safe_load(main.read_text())
    bundle = Bundle(root=root, files=[main])
    for kind, items in (root.get("resources") or {}).items():
        for key in items:
            bundle.declared_in[(kind, key)] = main
    for pattern in root.get("include", []):
        matches = sorted(root_dir.glob(pattern))
        if not matches:
            raise AssertionError(f"include {pattern!r} matches no file")
        for path in matches:
            extra = yaml.safe_load(path.read_text()) or {}
            unexpected = set(extra) - {"resources", "variables", "targets"}
            if unexpected:
                raise AssertionError(f"{path.name}: unexpected top-level keys {sorted(unexpected)}")
            bundle.files.append(path)
            for kind, items in (extra.get("resources") or {}).items():
                for key, value in items.items():
                    if (kind, key) in bundle.declared_in:
                        raise AssertionError(f"resources.{kind}.{key} declared twice ({path.name})")
                    root.setdefault("resources", {}).setdefault(kind, {})[key] = value
                    bundle.declared_in[(kind, key)] = path
    return bundle


def strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string in a YAML value, with its dotted path."""
    if isinstance(value, dict):
        return [item for key, sub in value.items() for item in strings(sub, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list):
        return [item for i, sub in enumerate(value) for item in strings(sub, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []
