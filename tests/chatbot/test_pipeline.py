"""The chat's pipeline seams: every statement reaches the data source through the policy, Streamlit stays in the UI,
and Vanna stays in its one adapter module."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from ctg_app.chatbot.assistant import build_assistant
from ctg_app.chatbot.data.source import SampleSQLiteSource
from ctg_app.chatbot.policy import GuardedSource
from ctg_app.errors import SqlValidationError
from ctg_app.settings import Settings

CHATBOT = Path(__file__).resolve().parents[2] / "ctg_app" / "chatbot"
VANNA_ADAPTER = CHATBOT / "answer" / "vanna_app.py"


class SpySource(SampleSQLiteSource):
    """The real sample source, noting each policy look-up and each statement it runs, in order."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[tuple[str, str]] = []

    def sql_policy(self):
        self.calls.append(("policy", ""))
        return super().sql_policy()

    def run_sql(self, sql: str) -> pd.DataFrame:
        self.calls.append(("run", sql))
        return super().run_sql(sql)


def test_every_statement_the_offline_assistant_runs_was_checked_by_the_policy_just_before(sample_db: Path):
    source = SpySource(sample_db)
    assistant = build_assistant(Settings(sample_db_path=sample_db), data_source=source)
    answer = assistant.ask("What is the total budget of the Engineering department?")  # reads department names
    assert answer.sql and not answer.declined
    df = assistant.run(answer.sql)
    assert len(df) == 1
    runs = [i for i, (kind, _) in enumerate(source.calls) if kind == "run"]
    assert len(runs) >= 2  # the engine's value reads and the answer itself
    assert all(i > 0 and source.calls[i - 1][0] == "policy" for i in runs), source.calls
    with pytest.raises(SqlValidationError):
        assistant.run("DELETE FROM projects")
    assert source.calls[-1][0] == "policy"  # refused before anything ran


def test_the_guarded_source_probe_compiles_without_rows_and_refuses_unknown_columns(sample_db: Path):
    source = SpySource(sample_db)
    guarded = GuardedSource(source)
    guarded.probe("SELECT project_code FROM projects")
    assert source.calls[-1][0] == "run" and "LIMIT 0" in source.calls[-1][1]
    with pytest.raises(SqlValidationError, match="project_nme"):
        guarded.probe("SELECT project_nme FROM projects")
    assert source.calls[-1][0] == "policy"


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports too), plus module names passed as text."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("vanna."):
            names.add(node.value)
    return names


@pytest.mark.parametrize("path", sorted(CHATBOT.rglob("*.py")), ids=lambda p: str(p.relative_to(CHATBOT)))
def test_the_chatbot_package_imports_no_streamlit_and_only_its_adapter_imports_vanna(path: Path):
    modules = _imported_modules(path)
    assert not {m for m in modules if m.split(".")[0] == "streamlit"}, "Streamlit belongs in ctg_app/ui/"
    if path != VANNA_ADAPTER:
        assert not {m for m in modules if m.split(".")[0] == "vanna"}, "Vanna belongs in chatbot/answer/vanna_app.py"
