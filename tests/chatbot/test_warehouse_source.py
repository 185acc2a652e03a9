"""The Databricks data source and `ctg-app check-training` against the local fake warehouse."""

from __future__ import annotations

import io

import pytest

from ctg_app.chatbot.data.source import DatabricksSource, DataSourceConfigError, make_data_source
from ctg_app.chatbot.data.training_check import check_training, main
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.settings import reload_settings

from .conftest import serve_sample_from_warehouse



@pytest.fixture
def warehouse(fake_warehouse, monkeypatch: pytest.MonkeyPatch):
    """The fake warehouse with the sample tables in ctg.project_controlling, and the app configured to use it."""
    wh = fake_warehouse
    serve_sample_from_warehouse(wh, monkeypatch)
    reload_settings()
    yield wh
    reload_settings()


def test_check_training_passes_against_the_fake_warehouse(warehouse):
    results = check_training()
    failures = [r for r in results if not r.ok]
    assert not failures, failures
    assert len(results) >= 30
    out = io.StringIO()
    assert main(out=out) == 0
    assert "0 failed" in out.getvalue()
    assert "Databricks SQL warehouse, schema ctg.project_controlling" in out.getvalue()


def test_vanna_on_the_warehouse_uses_the_databricks_dialect(warehouse):
    vn = build_assistant()
    assert vn.dialect == "Databricks SQL" and vn.sql_dialect == "databricks"
    answer = vn.ask("What is the total budget per fiscal year?")
    df = vn.run(answer.sql)
    assert list(df.columns) == ["fiscal_year", "total_budget"] and len(df) >= 3
    assert any("ctg.project_controlling.budget_lines" in s for s in warehouse.statements)


def test_databricks_source_needs_a_schema(monkeypatch):
    monkeypatch.setenv("CTG_DATA_SOURCE", "databricks")
    with pytest.raises(DataSourceConfigError, match="CTG_DATA_SCHEMA"):
        make_data_source(reload_settings())
    monkeypatch.setenv("CTG_DATA_SCHEMA", "a.b")
    assert isinstance(make_data_source(reload_settings()), DatabricksSource)


def test_databricks_source_reuses_its_session_and_recovers_after_an_outage(warehouse):
    from databricks.sql.exc import ServerOperationError

    source = make_data_source(reload_settings())
    warehouse.reset_stats()
    for _ in range(3):
        assert len(source.run_sql("SELECT * FROM projects")) > 0
    with pytest.raises(ServerOperationError):  # a bad statement keeps the session
        source.run_sql("SELECT nope FROM projects")
    assert warehouse.method_counts.get("OpenSession") == 1

    warehouse.stop()
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises; the app classifies it
        source.run_sql("SELECT * FROM projects")
    warehouse.start()
    assert len(source.run_sql("SELECT * FROM projects")) > 0  # a fresh session after the failure
    assert warehouse.method_counts.get("OpenSession") == 2
