"""The README is the front door: it lists every setting and the two commands, and CI runs its test command."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ctg_app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented():
    missing = [f.metadata["env"] for f in dataclasses.fields(Settings) if f"`{f.metadata['env']}`" not in README]
    assert missing == []


def test_the_two_commands_are_there_and_ci_runs_the_test_command():
    assert "make run" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci
