"""The one warehouse error classifier: real connector errors from the fake warehouse, decided by class, HTTP status,
error condition and SQLSTATE - not by the wording of the message."""

from __future__ import annotations

import pytest
import urllib3
from databricks import sql
from databricks.sql import exc as dbx

from ctg_app.warehouse.connection import ServicePrincipalRejected, is_rejection
from ctg_app.warehouse.errors import (
    CONFIGURATION,
    REJECTED,
    TRANSIENT,
    EventTooLarge,
    TableSchemaError,
    WarehouseConfigError,
    advice,
    classify_error,
)
from ctg_app.tracking import Actions, ErrorClassifier


def real_error(wh, statement: str, params=None, **overrides) -> Exception:
    kwargs = wh.connect_kwargs(_retry_stop_after_attempts_count=1, _socket_timeout=3, **overrides)
    try:
        with sql.connect(**kwargs) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
    except Exception as exc:  # noqa: BLE001 - the error is what the test is about
        return exc
    raise AssertionError(f"{statement!r} succeeded")


def test_real_connector_errors_from_the_fake_warehouse(fake_warehouse):
    wh = fake_warehouse
    missing = real_error(wh, "DESCRIBE TABLE main.nope.nothing")
    assert isinstance(missing, dbx.ServerOperationError)
    verdict = classify_error(missing)
    assert (verdict.kind, verdict.sqlstate) == (CONFIGURATION, "42P01"), verdict

    too_big = real_error(wh, "SELECT :p AS x", {"p": "x" * 1_100_000})
    assert classify_error(too_big).kind == REJECTED and is_rejection(too_big)

    wh.faults.next(5, http_status=503)
    busy = real_error(wh, "SELECT 1")
    assert classify_error(busy).kind == TRANSIENT, classify_error(busy)
    wh.faults.clear()

    wh.faults.next(1, method="ExecuteStatement", conflict=True)
    conflict = real_error(wh, "SELECT 1")
    assert classify_error(conflict).kind == TRANSIENT and classify_error(conflict).is_conflict

    bad_token = real_error(wh, "SELECT 1", access_token="wrong")
    verdict = classify_error(bad_token)
    assert verdict.kind == CONFIGURATION and verdict.is_auth, verdict


def test_closed_port_is_transient():
    err = urllib3.exceptions.MaxRetryError(None, "/sql", "refused")
    assert classify_error(err).kind == TRANSIENT
    assert classify_error(ConnectionRefusedError()).kind == TRANSIENT


@pytest.mark.parametrize(("message", "kind"), [
    # The same conditions with any wording: the verdict follows the condition / SQLSTATE only.
    ("[TABLE_OR_VIEW_NOT_FOUND] gone. SQLSTATE: 42P01", CONFIGURATION),
    ("[SOMETHING_NEW] the table moved elsewhere SQLSTATE: 42P01", CONFIGURATION),
    ("[DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields 'timestamp' and 'timestamp'", CONFIGURATION),
    ("[INSUFFICIENT_PERMISSIONS] User does not have MODIFY on Table. SQLSTATE: 42501", CONFIGURATION),
    ("[DELTA_CONCURRENT_APPEND] Files were added. SQLSTATE: 2D521", TRANSIENT),
    ("[INTERNAL_ERROR] not found, rejected, invalid SQLSTATE: XX000", TRANSIENT),
    ("warehouse stopped while running the statement", TRANSIENT),  # no facts at all: never dead-letter
    ("[PARAMETER_VALUES_TOO_LARGE] too big SQLSTATE: 54000", REJECTED),
    ("[CAST_INVALID_INPUT] The value 'x' cannot be cast SQLSTATE: 22018", REJECTED),
    ("Column not found, table cannot be found, rejected", TRANSIENT),  # words alone decide nothing
])
def test_server_errors_decided_by_condition_and_sqlstate(message, kind):
    assert classify_error(dbx.ServerOperationError(message)).kind == kind


def test_own_classes_and_wrapped_credentials():
    assert classify_error(TableSchemaError("t lacks user")).kind == CONFIGURATION
    assert classify_error(WarehouseConfigError("DATABRICKS_HTTP_PATH is not set")).kind == CONFIGURATION
    assert classify_error(EventTooLarge("one event is 2 MB")).kind == REJECTED
    wrapped = dbx.RequestError("Error during request", {"original-exception": ServicePrincipalRejected("nope")})
    verdict = classify_error(wrapped)
    assert verdict.kind == CONFIGURATION and verdict.is_auth
    assert "DATABRICKS_CLIENT" in advice(verdict)
    not_found = dbx.RequestError("Error during request to server", {"http-code": 404})
    assert classify_error(not_found).kind == CONFIGURATION and "HTTP_PATH" in advice(classify_error(not_found))
    assert classify_error(dbx.RequestError("x", {"http-code": 503})).kind == TRANSIENT


def test_the_app_classifier_uses_the_same_facts():
    classifier = ErrorClassifier()
    renamed = dbx.ServerOperationError("[UNRESOLVED_COLUMN.WITH_SUGGESTION] whatever text SQLSTATE: 42703")
    assert classifier.classify(renamed, Actions.EXECUTE_SQL) == Actions.SQL_ERROR
    worded = dbx.ServerOperationError("syntax error near no such table")  # no condition, no SQLSTATE
    assert classifier.classify(worded, Actions.EXECUTE_SQL) == Actions.DATABASE_ERROR


RUNAWAY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) AS n FROM r"


def test_a_statement_timeout_is_told_by_its_error_condition_not_by_words_in_the_message(fake_warehouse):
    # The chat's plain reason is derived from the warehouse verdict: the real STATEMENT_TIMEOUT error says so, and
    # SQL that merely names the condition (an unknown column, echoed in the message) is the user's SQL problem.
    from ctg_app.ui.chat_actions import _plain_reason

    stopped = real_error(fake_warehouse, RUNAWAY, session_configuration={"STATEMENT_TIMEOUT": "1"})
    assert classify_error(stopped).is_statement_timeout
    assert "was stopped" in (_plain_reason(stopped) or "")
    named = real_error(fake_warehouse, "SELECT QUERY_EXECUTION_TIMEOUT_EXCEEDED")
    assert "QUERY_EXECUTION_TIMEOUT_EXCEEDED" in str(named)
    assert not classify_error(named).is_statement_timeout
    assert _plain_reason(named) is None
    assert ErrorClassifier().classify(named, Actions.EXECUTE_SQL) == Actions.SQL_ERROR
