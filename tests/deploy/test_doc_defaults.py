"""The settings tables of docs/flush-spool.md state each default the code really has (the doc once said
``FLUSH_BATCH_SIZE`` defaults to 2000 while the code used 4000)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ctg_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FLUSH_DOC = ROOT / "docs" / "flush-spool.md"
DEFAULTS = {f.metadata["env"]: f.default for f in dataclasses.fields(Settings)}
_ROW = re.compile(r"^\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \| ([^|]+) \|", re.MULTILINE)


def documented_defaults(text: str) -> dict[str, str]:
    """``{setting: default as written}`` from every ``| `NAME` | `default` | ...`` table row; a row naming several
    settings (``| `A`, `B` | `false`, `30` |``) pairs them in order; ``—`` means no default."""
    found: dict[str, str] = {}
    for names_cell, default_cell in _ROW.findall(text):
        names = re.findall(r"`([A-Z0-9_]+)`", names_cell)
        values = re.findall(r"`([^`]*)`", default_cell) or [default_cell.strip()] * len(names)
        if len(values) != len(names):
            values = [default_cell.strip()] * len(names)
        found.update(zip(names, values))
    return found


def _as_written(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_parser_reads_single_and_paired_rows():
    text = ("| `A_B` | `7` | x |\n| `C`, `D` | `false`, `30` | y |\n| `E` | — | z |\n")
    assert documented_defaults(text) == {"A_B": "7", "C": "false", "D": "30", "E": "—"}


def test_flush_spool_doc_states_the_code_defaults():
    documented = documented_defaults(FLUSH_DOC.read_text())
    settings = {name: value for name, value in documented.items() if name in DEFAULTS}
    assert {"FLUSH_BATCH_SIZE", "SPOOL_RETENTION_DAYS", "SPOOL_MAX_MB", "WAREHOUSE_TIMEOUT_S",
            "TRACKING_PARK_AFTER_S", "TRACKING_DRAIN_TIMEOUT_S"} <= set(settings)
    wrong = {name: (written, _as_written(DEFAULTS[name])) for name, written in settings.items()
             if written != _as_written(DEFAULTS[name])}
    assert wrong == {}, f"doc default != code default: {wrong}"

