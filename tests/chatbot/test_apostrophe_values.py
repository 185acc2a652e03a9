"""A value with an apostrophe is filtered correctly on both data sources.

The engine composes Databricks SQL. Its literal used to be written the standard-SQL way, ``'O''Brien'``, which in the
Databricks dialect is two adjacent literals (``'O' 'Brien'`` = ``'OBrien'``; sqlglot renders ``CONCAT('O', 'Brien')``
and, for SQLite, ``'O' || 'Brien'``): a filter on such a value silently found nothing. Literals now come from sqlglot
for the dialect. The sample data carries a vendor with an apostrophe (an addition after every generated row); the
expected totals are summed here in Python from the generated rows, and the engine's SQL runs on the real SQLite sample
and on the real connector over the wire to the fake warehouse.
"""

from __future__ import annotations

import pytest

from ctg_app.chatbot.assistant import build_assistant
from ctg_app.chatbot.data.sample import APOSTROPHE_VENDOR, SCHEMA, generate
from ctg_app.chatbot.data.source import SampleSQLiteSource
from ctg_app.settings import Settings, reload_settings
from ctg_app.tracking.analytics.reports import sql_literal

from .conftest import serve_sample_from_warehouse

VENDOR = SCHEMA["actual_costs"].index(("vendor", "STRING"))
AMOUNT = SCHEMA["actual_costs"].index(("amount", "DECIMAL"))
DATE = SCHEMA["actual_costs"].index(("posting_date", "DATE"))
POSTINGS = [row for row in generate()["actual_costs"] if row[VENDOR] == APOSTROPHE_VENDOR]
QUESTIONS = {
    f"actual costs of vendor {APOSTROPHE_VENDOR}": round(sum(row[AMOUNT] for row in POSTINGS), 2),
    f"{APOSTROPHE_VENDOR.lower()} costs in 2024": round(sum(row[AMOUNT] for row in POSTINGS
                                                              if row[DATE].startswith("2024")), 2),
}


def test_the_sample_holds_the_apostrophe_vendor_in_addition_to_the_generated_rows():
    assert "'" in APOSTROPHE_VENDOR and len(POSTINGS) == 3
    costs = generate()["actual_costs"]
    assert costs[-len(POSTINGS):] == POSTINGS  # appended after every generated row
    assert all(value > 0 for value in QUESTIONS.values())


@pytest.fixture(scope="module")
def sqlite_vn(sample_db):
    return build_assistant(Settings(sample_db_path=sample_db), data_source=SampleSQLiteSource(sample_db))


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_filter_on_an_apostrophe_value_on_sqlite(sqlite_vn, question):
    answer = sqlite_vn.ask(question)
    assert not answer.declined and APOSTROPHE_VENDOR.split("'")[1] in answer.sql, answer
    frame = sqlite_vn.run(answer.sql)
    assert round(float(frame.iloc[0, 0]), 2) == QUESTIONS[question], answer.sql


@pytest.fixture
def warehouse_vn(fake_warehouse, monkeypatch: pytest.MonkeyPatch):
    serve_sample_from_warehouse(fake_warehouse, monkeypatch)
    reload_settings()
    yield build_assistant()
    reload_settings()


def test_a_filter_on_an_apostrophe_value_over_the_wire(warehouse_vn, fake_warehouse):
    for question, expected in QUESTIONS.items():
        answer = warehouse_vn.ask(question)
        assert not answer.declined, answer
        frame = warehouse_vn.run(answer.sql)
        assert round(float(frame.iloc[0, 0]), 2) == expected, answer.sql
    assert any("O\\'Brien" in statement for statement in fake_warehouse.statements)  # Databricks' own escape


@pytest.mark.parametrize("dialect", ["databricks", "sqlite", "duckdb"])
def test_report_literals_come_from_sqlglot_for_the_dialect(dialect):
    import sqlglot

    for value in (APOSTROPHE_VENDOR, "back\\slash", "it''s"):
        literal = sql_literal(value, dialect)
        parsed = sqlglot.parse_one(f"SELECT {literal}", read=dialect).expressions[0]
        assert parsed.is_string and parsed.this == value, literal
