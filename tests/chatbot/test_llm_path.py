"""The LLM path over the wire: the real ``openai`` client against a local fake OpenAI-compatible server.

Scripted replies prove: good SQL is validated and runs with its restatement; a wrong column (or a query the database
rejects) gets exactly one retry carrying the error text; a hang ends after LLM_TIMEOUT_S; HTTP 429 is retried
LLM_MAX_RETRIES times and then reported; garbage is an llm_error and nothing runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctg_app.ui import operations
from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.settings import Settings
from ctg_app.errors import LlmError, SqlValidationError
from tests.chatbot.conftest import actions
from tests.chatbot.fake_openai import FakeOpenAI, hang, reply, status

KEY = "sk-test-secret-0123456789"
GOOD_SQL = "SELECT status, COUNT(*) AS n FROM projects GROUP BY status ORDER BY status"
GOOD = json.dumps({"sql": GOOD_SQL, "interpretation": "Number of projects per status"})


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def llm_vn(server: FakeOpenAI, sample_db: Path, chatbot_env):
    """An assistant on the sample database whose LLM is the fake server (1 s timeout, 2 retries)."""
    def build(**changes):
        settings = Settings(llm_provider="openai", openai_api_key=KEY, openai_base_url=server.base_url,
                            sample_db_path=sample_db, llm_timeout_s=1.0, llm_max_retries=2).replace(**changes)
        vn = build_assistant(settings)
        vn.executed = []
        run = vn.data_source.run_sql

        def counting_run(sql: str):  # the real source, counted: proves what reached the database
            vn.executed.append(sql)
            return run(sql)

        vn.data_source.run_sql = counting_run
        return vn
    return build


def _last_user_text(request: dict) -> str:
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


def test_good_sql_is_validated_run_and_carries_its_interpretation(server, llm_vn, chatbot_env):
    server.play(reply(GOOD))
    vn = llm_vn()
    answer = operations.generate_sql(vn, "how many projects are there in each status?")
    assert (answer.sql, answer.interpretation, answer.confidence) == (GOOD_SQL, "Number of projects per status",
                                                                        "medium")
    df = operations.execute_sql(vn, answer.sql)
    assert df["n"].sum() == 120 and not df.attrs["capped"]
    assert [a for a, _, _ in actions(chatbot_env)] == ["sql_query", "execute_sql"]
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["model"] == "gpt-4o-mini"
    system = request["messages"][0]["content"]
    assert "CREATE TABLE projects" in system and '"interpretation"' in system
    assert _last_user_text(request) == "how many projects are there in each status?"


def test_wrong_column_gets_one_retry_with_the_error_and_the_fix_is_used(server, llm_vn, chatbot_env):
    server.play(reply(json.dumps({"sql": "SELECT project_nme FROM projects", "interpretation": "x"})), reply(GOOD))
    vn = llm_vn()
    answer = operations.generate_sql(vn, "projects per status")
    assert answer.sql == GOOD_SQL and answer.confidence == "low"
    assert len(server.requests) == 2
    retry = _last_user_text(server.requests[1])
    assert "unknown column 'project_nme'" in retry and "SELECT project_nme FROM projects" in retry
    assert [m["role"] for m in server.requests[1]["messages"][-2:]] == ["assistant", "user"]
    assert not any("project_nme" in sql for sql in vn.executed)  # refused before it reached the database


def test_sql_with_a_function_off_the_allow_list_is_retried_with_the_reason(server, llm_vn, chatbot_env):
    # An unknown function never reaches the database now: the per-dialect allow-list refuses it, and that reason is
    # what the model is asked to correct.
    server.play(reply(json.dumps({"sql": "SELECT nosuchfunc(status) AS s FROM projects"})), reply(GOOD))
    vn = llm_vn()
    answer = operations.generate_sql(vn, "projects per status")
    assert answer.sql == GOOD_SQL
    assert "the function nosuchfunc is not allowed in chat queries" in _last_user_text(server.requests[1]).lower()
    assert vn.executed and all(sql.rstrip().endswith("LIMIT 0") for sql in vn.executed)  # compile-only probes


def test_a_second_failure_is_an_sql_error_after_exactly_one_retry(server, llm_vn, chatbot_env):
    bad = reply(json.dumps({"sql": "SELECT project_nme FROM projects"}))
    server.play(bad, bad, bad)
    vn = llm_vn()
    with pytest.raises(SqlValidationError, match="failed twice.*project_nme"):
        operations.generate_sql(vn, "projects")
    assert len(server.requests) == 2
    assert [a for a, _, _ in actions(chatbot_env)] == ["sql_error"]


def test_a_write_is_refused_and_the_model_may_decline_instead(server, llm_vn, chatbot_env):
    server.play(reply(json.dumps({"sql": "WITH d AS (DELETE FROM projects RETURNING 1) SELECT COUNT(*) FROM d"})),
                reply(json.dumps({"sql": None, "decline": "this assistant only reads data"})))
    vn = llm_vn()
    # an innocent question: a write-worded one is declined before the model is asked (test_answer_writes_and_followups)
    answer = operations.generate_sql(vn, "how many projects are there")
    assert answer.declined and answer.sql is None and "only reads data" in answer.message
    assert "DELETE" in _last_user_text(server.requests[1])
    assert vn.executed == []


def test_a_hang_ends_after_the_client_timeout_with_a_clear_llm_error(server, llm_vn, chatbot_env):
    server.play(hang(), hang())
    vn = llm_vn(llm_timeout_s=0.5, llm_max_retries=1)
    started = time.monotonic()
    with pytest.raises(LlmError, match=r"did not answer within LLM_TIMEOUT_S=0\.5 s \(2 attempts\)"):
        operations.generate_sql(vn, "projects per status")
    assert time.monotonic() - started < 6  # not the client's default 600 s
    assert len(server.requests) == 2 and vn.executed == []
    assert [a for a, _, _ in actions(chatbot_env)] == ["llm_error"]


def test_rate_limit_is_retried_then_reported(server, llm_vn, chatbot_env):
    server.play(status(429), status(429), status(429), reply(GOOD))
    vn = llm_vn(llm_max_retries=2)
    with pytest.raises(LlmError, match=r"rate-limited \(HTTP 429\) after 3 attempts"):
        operations.generate_sql(vn, "projects per status")
    assert len(server.requests) == 3 and vn.executed == []
    assert [a for a, _, _ in actions(chatbot_env)] == ["llm_error"]

    server.play(status(429), reply(GOOD))  # a passing 429 is absorbed by the client's retry
    operations.clear_caches()
    assert operations.generate_sql(vn, "projects per status").sql == GOOD_SQL


def test_garbage_is_an_llm_error_and_nothing_runs(server, llm_vn, chatbot_env):
    server.play(reply("Sure! Projects are a great way to organise work. 🎉"))
    vn = llm_vn()
    with pytest.raises(LlmError, match="held no SQL"):
        operations.generate_sql(vn, "projects per status")
    assert len(server.requests) == 1 and vn.executed == []
    assert [a for a, _, _ in actions(chatbot_env)] == ["llm_error"]


def test_rejected_key_is_reported_without_the_key(server, llm_vn, chatbot_env):
    server.play(status(401))
    vn = llm_vn()
    with pytest.raises(LlmError) as info:
        operations.generate_sql(vn, "projects per status")
    assert "refused the credentials" in str(info.value) and KEY not in str(info.value)
    assert KEY not in json.dumps([dict(r) for r in chatbot_env.rows()], default=str)


def test_the_previous_turn_goes_to_the_model(server, llm_vn):
    server.play(reply(GOOD))
    vn = llm_vn()
    previous = SqlAnswer(question="projects per status", sql=GOOD_SQL, interpretation="Number of projects per status")
    vn.ask("and only the on-hold ones?", previous=previous)
    texts = [m["content"] for m in server.requests[0]["messages"]]
    assert texts[-3:-1] == ["projects per status", json.dumps({"sql": GOOD_SQL,
                                                               "interpretation": "Number of projects per status"})]
    assert texts[-1] == "and only the on-hold ones?"


@pytest.mark.parametrize(("text", "sql", "interpretation"), [
    (GOOD, GOOD_SQL, "Number of projects per status"),
    (f"```json\n{GOOD}\n```", GOOD_SQL, "Number of projects per status"),
    (f"Here you go:\n{GOOD}\nHope it helps", GOOD_SQL, "Number of projects per status"),
    (f"```sql\n{GOOD_SQL};\n```", GOOD_SQL, ""),
])
def test_reply_formats_the_parser_accepts(text, sql, interpretation):
    from ctg_app.chatbot.answer.llm_reply import parse_reply

    parsed = parse_reply(text)
    assert (parsed.sql, parsed.interpretation) == (sql, interpretation)
