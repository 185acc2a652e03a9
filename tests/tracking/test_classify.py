"""The default classification table, one row per rule, plus the operation defaults and custom rules."""

from __future__ import annotations

import sqlite3

import duckdb
import pytest
import sqlglot
import urllib3
from databricks.sql import exc as dbx

from ctg_app.tracking import Actions, ByType, ChartError, ErrorClassifier, LlmError, SqlValidationError


def foreign(module: str, name: str, base: type[Exception] = Exception) -> Exception:
    """An exception whose class lives in ``module`` (for client libraries that are not installed here)."""
    return type(name, (base,), {"__module__": module})("simulated")


def sqlglot_error() -> Exception:
    try:
        sqlglot.parse_one("SELECT FROM WHERE (", read="databricks")
    except sqlglot.errors.SqlglotError as exc:
        return exc
    raise AssertionError("sqlglot accepted invalid SQL")


def duckdb_error(sql: str) -> Exception:
    try:
        duckdb.connect().execute(sql)
    except duckdb.Error as exc:
        return exc
    raise AssertionError(f"duckdb accepted {sql!r}")


TABLE = [
    # (exception, operation, expected action)
    (SqlValidationError("only SELECT is allowed"), Actions.SQL_QUERY, Actions.SQL_ERROR),
    (ChartError("no numeric column"), Actions.EXECUTE_SQL, Actions.CHART_ERROR),
    (LlmError("empty completion"), Actions.EXECUTE_SQL, Actions.LLM_ERROR),
    (sqlglot_error(), Actions.EXECUTE_SQL, Actions.SQL_ERROR),
    (duckdb_error("SELEC 1"), Actions.EXECUTE_SQL, Actions.SQL_ERROR),  # ParserException
    (duckdb_error("SELECT * FROM missing_table"), Actions.EXECUTE_SQL, Actions.SQL_ERROR),  # CatalogException
    (duckdb_error("SELECT nope FROM (SELECT 1 AS a)"), Actions.EXECUTE_SQL, Actions.SQL_ERROR),  # BinderException
    (duckdb.IOException("disk"), Actions.EXECUTE_SQL, Actions.DATABASE_ERROR),
    (sqlite3.OperationalError("no such table: projects"), Actions.EXECUTE_SQL, Actions.SQL_ERROR),
    (sqlite3.OperationalError('near "SELEC": syntax error'), Actions.EXECUTE_SQL, Actions.SQL_ERROR),
    (sqlite3.OperationalError("database is locked"), Actions.EXECUTE_SQL, Actions.DATABASE_ERROR),
    (sqlite3.DatabaseError("file is not a database"), Actions.EXECUTE_SQL, Actions.DATABASE_ERROR),
    (dbx.ServerOperationError("[TABLE_OR_VIEW_NOT_FOUND] x. SQLSTATE: 42P01"), Actions.EXECUTE_SQL, Actions.SQL_ERROR),
    (dbx.ServerOperationError("warehouse stopped"), Actions.EXECUTE_SQL, Actions.DATABASE_ERROR),
    (dbx.RequestError("Error during request to server"), Actions.SQL_QUERY, Actions.DATABASE_ERROR),
    (dbx.OperationalError("session closed"), Actions.EXECUTE_SQL, Actions.DATABASE_ERROR),
    (urllib3.exceptions.MaxRetryError(None, "/sql", "refused"), Actions.EXECUTE_SQL, Actions.DATABASE_ERROR),
    (foreign("openai._exceptions", "RateLimitError"), Actions.EXECUTE_SQL, Actions.LLM_ERROR),
    (foreign("openai", "APIConnectionError"), Actions.SQL_QUERY, Actions.LLM_ERROR),
    (foreign("anthropic._exceptions", "APIStatusError"), Actions.GENERATE_SUMMARY, Actions.LLM_ERROR),
    (foreign("ollama._types", "ResponseError"), Actions.SQL_QUERY, Actions.LLM_ERROR),
    (foreign("plotly.exceptions", "PlotlyError"), Actions.EXECUTE_SQL, Actions.CHART_ERROR),
    # No rule matches: the operation's default, then app_error.
    (ValueError("x"), Actions.GENERATE_CHART, Actions.CHART_ERROR),
    (ValueError("x"), Actions.SQL_QUERY, Actions.LLM_ERROR),
    (ValueError("x"), Actions.GENERATE_SUMMARY, Actions.LLM_ERROR),
    (ValueError("x"), Actions.EXECUTE_SQL, Actions.SQL_ERROR),
    (ValueError("x"), Actions.EDIT_SQL, Actions.SQL_ERROR),
    (ValueError("x"), Actions.DOWNLOAD_RESULTS, Actions.APP_ERROR),
    (ValueError("x"), None, Actions.APP_ERROR),
    (ValueError("x"), Actions.LLM_ERROR, Actions.LLM_ERROR),
]


@pytest.mark.parametrize(("exc", "operation", "expected"), TABLE,
                         ids=[f"{type(e).__name__}-in-{op}" for e, op, _ in TABLE])
def test_default_classification(exc, operation, expected):
    assert ErrorClassifier().classify(exc, operation) == expected


def test_custom_rules_come_first():
    classifier = ErrorClassifier().with_rules(ByType(("builtins.TimeoutError",), Actions.DATABASE_ERROR))
    assert classifier.classify(TimeoutError(), Actions.SQL_QUERY) == Actions.DATABASE_ERROR
    assert classifier.classify(ValueError(), Actions.SQL_QUERY) == Actions.LLM_ERROR


def test_classifying_never_imports_client_libraries():
    # in a fresh interpreter: other tests in this process import the real openai client (the LLM-path tests)
    import subprocess
    import sys

    code = ("import sys\n"
            "from ctg_app.tracking import Actions, ErrorClassifier\n"
            "ErrorClassifier().classify(ValueError('x'), Actions.SQL_QUERY)\n"
            "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules and 'ollama' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_classifying_a_warehouse_error_loads_no_warehouse_module():
    # The recorder decides sql_error vs database_error from the ground-floor facts; it used to import
    # ctg_app.warehouse.errors (and with it the warehouse package) inside the rule, the first time a Databricks error
    # was classified.
    import subprocess
    import sys

    code = ("import sys\n"
            "from databricks.sql.exc import ServerOperationError\n"
            "from ctg_app.tracking.recording.classify import ErrorClassifier\n"
            "from ctg_app.tracking.recording.actions import Actions\n"
            "bad = ServerOperationError('[UNRESOLVED_COLUMN.WITH_SUGGESTION] x SQLSTATE: 42703')\n"
            "assert ErrorClassifier().classify(bad, Actions.EXECUTE_SQL) == Actions.SQL_ERROR\n"
            "busy = ServerOperationError('[INTERNAL_ERROR] x SQLSTATE: XX000')\n"
            "assert ErrorClassifier().classify(busy, Actions.EXECUTE_SQL) == Actions.DATABASE_ERROR\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('ctg_app.warehouse', 'ctg_app.tracking.delivery')))\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
