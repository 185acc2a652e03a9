"""Sample data, training file, local check-training and the CLI."""

from __future__ import annotations

import io
import os
import sqlite3
import tomllib

import pytest

from ctg_app import cli, serve
from ctg_app.chatbot.data import training_check
from ctg_app.chatbot.data.source import SampleSQLiteSource, make_data_source, qualify_tables
from ctg_app.chatbot.data.sample import SCHEMA, ensure_sample_db, generate, sample_tables
from ctg_app.chatbot.data.training import TRAINING_FILE, Example, load_training, transpile
from ctg_app.settings import reload_settings


def test_sample_data_is_deterministic_and_sized():
    first, second = generate(), generate()
    assert first == second
    total = sum(len(rows) for rows in first.values())
    assert 3000 <= total <= 20000
    assert set(first) == set(SCHEMA) == {"departments", "customers", "projects", "budget_lines", "actual_costs",
                                         "cost_to_go", "hours"}


def test_sample_db_is_built_once_and_read_only(tmp_path):
    path = ensure_sample_db(tmp_path / "deep" / "ctg.sqlite3")
    mtime = path.stat().st_mtime_ns
    assert ensure_sample_db(path).stat().st_mtime_ns == mtime  # current: not rebuilt
    source = SampleSQLiteSource(path)
    assert source.run_sql("SELECT COUNT(*) AS n FROM projects")["n"][0] == 120
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        source.run_sql("DELETE FROM projects")
    assert source.run_sql("SELECT YEAR('2024-05-01') AS y, QUARTER('2024-05-01') AS q").iloc[0].tolist() == [2024, 2]


def test_sample_tables_are_typed():
    frames = sample_tables()
    assert str(frames["projects"]["contract_value"].dtype) == "float64"
    assert frames["hours"]["billable"].dtype == bool
    assert hasattr(frames["actual_costs"]["posting_date"].iloc[0], "isoformat")


def test_training_file_has_enough_varied_examples():
    raw = tomllib.loads(TRAINING_FILE.read_text())
    assert len(raw["ddl"]) == len(SCHEMA)
    data = load_training()
    assert len(data.examples) >= 30
    sqls = " ".join(e.sql.upper() for e in data.examples)
    for feature in (" WHERE ", " GROUP BY ", " LIMIT ", " JOIN ", "SUM(", "COUNT(", "YEAR(", "DATE'"):
        assert feature in sqls, feature
    questions = [e.question for e in data.examples]
    assert len(set(questions)) == len(questions)


def test_transpile_and_qualify():
    assert "CAST(" in transpile("SELECT DATEDIFF(end_date, start_date) FROM projects", "sqlite")
    assert qualify_tables("WITH t AS (SELECT * FROM projects) SELECT * FROM t", "c", "s") == \
        "WITH t AS (SELECT * FROM c.s.projects) SELECT * FROM t"


def test_check_training_passes_on_the_sample_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CTG_SAMPLE_DB_PATH", str(tmp_path / "s.sqlite3"))
    reload_settings()
    out = io.StringIO()
    assert training_check.main(verbose=True, out=out) == 0
    assert "0 failed" in out.getvalue()
    assert cli.main(["check-training"]) == 0


def test_check_training_reports_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CTG_SAMPLE_DB_PATH", str(tmp_path / "s.sqlite3"))
    reload_settings()
    real = training_check.load_training

    def with_a_broken_example(dialect):
        data = real(dialect=dialect)
        broken = Example("Broken question", "SELECT no_such_column FROM projects")
        return type(data)(data.ddl, data.documentation, data.examples + (broken,))

    monkeypatch.setattr(training_check, "load_training", with_a_broken_example)
    assert cli.main(["check-training"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  Broken question" in out and "no_such_column" in out and "1 failed" in out


def test_check_training_cannot_check(monkeypatch, capsys):
    monkeypatch.setenv("CTG_DATA_SOURCE", "nowhere")
    reload_settings()
    assert cli.main(["check-training"]) == 3  # exit_codes.EXIT_CONFIG (was 2, the usage code)
    assert "cannot check" in capsys.readouterr().out


def test_run_command_starts_streamlit_headless(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda path, cmd, env: calls.append((cmd, env)))
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 0)
    assert cli.main(["run", "--server.port", "8765"]) == 0
    cmd, env = calls[0]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(cli.APP_PATH.parent.parent)
    assert cmd[1:] == ["-m", "ctg_app.serve", "--server.port", "8765"]  # the launcher (ctg_app/serve.py) ...
    argv = serve.streamlit_argv(cmd[3:])  # ... runs streamlit's own `streamlit run` in-process with these arguments
    assert argv[:2] == ["streamlit", "run"] and argv[2].endswith("ctg_app/app.py")
    assert argv[3:] == ["--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
                        "--server.port", "8765"]


def test_subcommands_are_registered_one_function_each():
    parser = cli.build_parser()
    names = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001
    assert {"run", "check-training", "selftest", "usage-report"} <= names
    # Each listed function registers exactly one subcommand, and that subcommand has a handler to run.
    import argparse

    registered = []
    for add in cli.COMMANDS:
        fresh = argparse.ArgumentParser().add_subparsers(dest="command")
        add(fresh)
        assert len(fresh.choices) == 1, add.__name__
        (name, sub), = fresh.choices.items()
        assert callable(sub.get_default("func")), name
        registered.append(name)
    assert sorted(registered) == sorted(names)


def test_default_source_is_the_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("CTG_SAMPLE_DB_PATH", str(tmp_path / "x.sqlite3"))
    source = make_data_source(reload_settings())
    assert isinstance(source, SampleSQLiteSource) and source.dialect == "sqlite"
