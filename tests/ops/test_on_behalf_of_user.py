"""Chat SQL on behalf of the signed-in user (issue 21): the user's X-Forwarded-Access-Token runs the statement on the
fake warehouse (its statement log names the principal per token), the service principal is the fallback, and
CTG_QUERY_IDENTITY chooses. The token reaches no log, event, spool row or error message."""

from __future__ import annotations

import logging

import pytest
from fake_databricks import FakeWarehouse

from ctg_app.chatbot.data.source import DatabricksSource, DataSourceConfigError, acting_as
from ctg_app.settings import Settings
from ctg_app.tracking import Actions, tracked
from ctg_app.warehouse.connection import describe_error

ALICE_TOKEN = "dapi-user-alice-0123456789abcdef"
BOB_TOKEN = "dapi-user-bob-fedcba9876543210"
QUERY = "SELECT COUNT(*) AS n FROM projects"


@pytest.fixture
def wh():
    with FakeWarehouse(user_tokens={ALICE_TOKEN: "alice@example.com", BOB_TOKEN: "bob@example.com"}) as wh:
        wh.query("CREATE TABLE ctg.sample.projects (id INT)")
        wh.query("INSERT INTO ctg.sample.projects VALUES (1), (2)")
        yield wh


def source(wh: FakeWarehouse, identity: str | None = None) -> DatabricksSource:
    env = {**wh.env(), "CTG_DATA_SOURCE": "databricks", "CTG_DATA_SCHEMA": "ctg.sample", "WAREHOUSE_TIMEOUT_S": "3"}
    if identity:
        env["CTG_QUERY_IDENTITY"] = identity
    return DatabricksSource(Settings.from_sources(env))


def principals(wh: FakeWarehouse) -> list[str]:
    return [who for sql, who in wh.statement_log if "projects" in sql]


def test_the_users_token_runs_the_statement_and_the_service_principal_is_the_fallback(wh) -> None:
    src = source(wh)  # CTG_QUERY_IDENTITY=auto (the default)
    assert src.run_sql(QUERY, user_token=ALICE_TOKEN)["n"].tolist() == [2]
    assert src.run_sql(QUERY)["n"].tolist() == [2]  # no header: the app's own principal
    with acting_as(BOB_TOKEN):  # how the page binds the header's token for the assistant's SQL
        src.run_sql(QUERY)
    assert principals(wh) == ["alice@example.com", "service-principal", "bob@example.com"]


def test_the_setting_chooses_who_runs_chat_sql(wh) -> None:
    source(wh, "service-principal").run_sql(QUERY, user_token=ALICE_TOKEN)
    assert principals(wh) == ["service-principal"]
    strict = source(wh, "user")
    with pytest.raises(DataSourceConfigError, match="no user token"):
        strict.run_sql(QUERY)
    strict.run_sql(QUERY, user_token=ALICE_TOKEN)
    assert principals(wh) == ["service-principal", "alice@example.com"]
    with pytest.raises(ValueError, match="CTG_QUERY_IDENTITY"):
        Settings.from_sources({"CTG_QUERY_IDENTITY": "whoever"})


def test_the_user_token_reaches_no_log_event_spool_or_error(wh, tracking_spool, caplog) -> None:
    src = source(wh)
    caplog.set_level(logging.DEBUG)  # the connector's own debug lines too
    run = tracked(Actions.EXECUTE_SQL)(lambda sql, token: src.run_sql(sql, user_token=token))
    with pytest.raises(Exception) as failed:  # a statement the warehouse refuses, run as the user
        run("SELECT no_such_column FROM projects", ALICE_TOKEN)
    revoked = "dapi-user-revoked-00000000000000"
    with pytest.raises(Exception) as rejected:  # a token the workspace does not accept (HTTP 401)
        run(QUERY, revoked)
    messages = [str(failed.value), describe_error(failed.value), str(rejected.value), describe_error(rejected.value)]
    rows = [repr(dict(row)) for row in tracking_spool.rows()]
    assert len(rows) == 2 and all("error" in row for row in rows)
    everything = "\n".join([caplog.text, *messages, *rows])
    assert ALICE_TOKEN not in everything and revoked not in everything
    assert principals(wh)[0] == "alice@example.com"  # the failed statement did run as the user


def test_the_page_reads_the_forwarded_token(monkeypatch) -> None:
    import ctg_app.ui.user_token as user_token

    monkeypatch.setattr(user_token, "request_headers", lambda: {"X-Forwarded-Access-Token": ALICE_TOKEN})
    assert user_token.user_access_token() == ALICE_TOKEN
    monkeypatch.setattr(user_token, "request_headers", lambda: {})
    assert user_token.user_access_token() is None


def test_a_cached_result_is_never_served_to_another_user(wh) -> None:
    """The chat caches query results by SQL text; run on behalf of users, each user's result is their own."""
    from ctg_app.chatbot.assistant import build_assistant
    from ctg_app.ui import operations as ops

    src = source(wh)
    assistant = build_assistant(src.settings, data_source=src, cache_key="obo-test")  # the page's typed assistant
    ops.clear_caches()
    try:
        for token in (ALICE_TOKEN, BOB_TOKEN, ALICE_TOKEN):
            with acting_as(token):
                assert ops.execute_sql(assistant, QUERY)["n"].tolist() == [2]
    finally:
        ops.clear_caches()
    assert principals(wh) == ["alice@example.com", "bob@example.com"]  # Alice's second ask came from the cache
