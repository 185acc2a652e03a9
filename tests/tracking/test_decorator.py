"""@tracked: one event per call, classified errors, re-raise untouched, async, methods, metadata, capture, cache order."""

from __future__ import annotations

import asyncio
import inspect
import json
import sqlite3

import pytest
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from ctg_app.tracking import Actions, SqlValidationError, tracked
from tests.conftest import actions


def test_success_records_the_action_once_with_duration(tracking_spool):
    @tracked(Actions.EXECUTE_SQL)
    def run(sql):
        return 42

    assert run("select 1") == 42
    [row] = tracking_spool.rows()
    assert row["action"] == "execute_sql"
    assert row["operation"] == "execute_sql"
    assert row["status"] == "ok"
    assert row["user"] == "ctg_chatbot_user@eleviogroup.com"
    assert row["app_name"] == "elevio-ctg-chatbot-vanna"
    assert row["error_type"] is None and row["error_message"] is None
    assert row["duration_ms"] >= 0
    assert json.loads(row["details"]) == {}  # arguments are not captured by default


def test_error_records_classified_action_and_reraises_the_same_exception(tracking_spool):
    boom = sqlite3.OperationalError("no such table: projects")

    @tracked(Actions.EXECUTE_SQL)
    def run():
        raise boom

    with pytest.raises(sqlite3.OperationalError) as caught:
        run()
    assert caught.value is boom
    assert caught.value.__traceback__ is not None
    [row] = tracking_spool.rows()
    assert (row["action"], row["operation"], row["status"]) == ("sql_error", "execute_sql", "error")
    assert row["error_type"] == "OperationalError"
    assert row["error_message"] == "no such table: projects"


def test_unknown_error_falls_back_to_the_operations_default(tracking_spool):
    @tracked(Actions.GENERATE_CHART)
    def chart():
        raise KeyError("x")

    @tracked(Actions.SELECT_COLUMNS)
    def pick():
        raise KeyError("y")

    for fn in (chart, pick):
        with pytest.raises(KeyError):
            fn()
    assert actions(tracking_spool) == ["chart_error", "app_error"]


def test_error_message_is_bounded(tracking_spool):
    @tracked(Actions.GENERATE_SUMMARY)
    def summary():
        raise RuntimeError("x" * 100_000)

    with pytest.raises(RuntimeError):
        summary()
    [row] = tracking_spool.rows()
    assert row["action"] == "llm_error"
    assert len(row["error_message"]) <= 500


def test_async_functions_are_tracked(tracking_spool):
    @tracked(Actions.SQL_QUERY)
    async def generate(question):
        await asyncio.sleep(0)
        return "SELECT 1"

    @tracked(Actions.SQL_QUERY)
    async def failing():
        raise SqlValidationError("not a SELECT")

    assert inspect.iscoroutinefunction(generate)
    assert asyncio.run(generate("q")) == "SELECT 1"
    with pytest.raises(SqlValidationError):
        asyncio.run(failing())
    assert actions(tracking_spool) == ["sql_query", "sql_error"]


def test_methods_are_tracked_and_keep_self(tracking_spool):
    class Bot:
        factor = 3

        @tracked(Actions.GENERATE_SUMMARY)
        def summarise(self, n):
            return n * self.factor

    assert Bot().summarise(2) == 6
    assert actions(tracking_spool) == ["generate_summary"]


def test_metadata_is_kept():
    def original(a: int, b: str = "x") -> str:
        """Docstring."""
        return b * a

    wrapped = tracked(Actions.EDIT_SQL)(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Docstring."
    assert wrapped.__wrapped__ is original
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.tracked_action == "edit_sql"


def test_capture_records_only_the_named_arguments_bounded(tracking_spool):
    @tracked(Actions.GENERATE_QUESTION, capture=("question",))
    def ask(question, api_key=None):
        return question

    ask("How many projects? " * 50, api_key="sk-proj-abcdefghijklmnopqrstuvwxyz")
    details = json.loads(tracking_spool.rows()[0]["details"])
    assert set(details) == {"question"}
    assert details["question"].startswith("How many projects?")
    assert len(details["question"]) <= 200


def test_details_from_the_result(tracking_spool):
    @tracked(Actions.EXECUTE_SQL, details=lambda rows: {"rows": len(rows)})
    def run():
        return [1, 2, 3]

    run()
    assert json.loads(tracking_spool.rows()[0]["details"]) == {"rows": 3}


def test_a_broken_details_function_does_not_break_the_call(tracking_spool):
    @tracked(Actions.EXECUTE_SQL, details=lambda rows: 1 / 0)
    def run():
        return "value"

    assert run() == "value"
    assert actions(tracking_spool) == ["execute_sql"]


@pytest.mark.parametrize("control_flow", [StopException(), RerunException(None)])
def test_streamlit_control_flow_passes_through_and_is_not_an_error(tracking_spool, control_flow):
    @tracked(Actions.VIEW_RANDOM_QUESTIONS)
    def handler():
        raise control_flow

    with pytest.raises(type(control_flow)) as caught:
        handler()
    assert caught.value is control_flow
    [row] = tracking_spool.rows()
    assert (row["action"], row["status"]) == ("view_random_questions", "ok")


def test_keyboard_interrupt_passes_through_as_interrupted(tracking_spool):
    @tracked(Actions.EXECUTE_SQL)
    def run():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run()
    [row] = tracking_spool.rows()
    assert (row["action"], row["status"], row["error_type"]) == ("execute_sql", "interrupted", "KeyboardInterrupt")


def test_tracked_above_cache_data_sees_hits_and_below_sees_only_misses(tracking_spool):
    calls = []

    @tracked(Actions.SQL_QUERY)
    @st.cache_data
    def above(question):
        calls.append(question)
        return question.upper()

    @st.cache_data
    @tracked(Actions.GENERATE_SUMMARY)
    def below(question):
        return question.lower()

    above.__wrapped__.clear()
    below.clear()
    for _ in range(3):
        assert above("q") == "Q"
        assert below("Q") == "q"
    assert calls == ["q"]  # the cache served the repeats
    assert actions(tracking_spool).count("sql_query") == 3
    assert actions(tracking_spool).count("generate_summary") == 1
