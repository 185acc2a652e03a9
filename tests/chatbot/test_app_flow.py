"""AppTest: the whole chat flow on the offline default, asserting the exact ordered list of spooled events."""

from __future__ import annotations

import io
import sqlite3

import openpyxl
import pytest
from streamlit.testing.v1 import AppTest

from ctg_app.chatbot.data.source import SampleSQLiteSource
from ctg_app.chatbot.assistant import Assistant
from ctg_app.settings import reload_settings
from ctg_app.tracking import reset_tracker

from .conftest import APP_PATH, actions

USER = "test@example.com"
OK = "ok"
ERROR = "error"
PIPELINE = ["generate_question", "sql_query", "execute_sql", "generate_chart", "generate_summary"]


def reconfigure() -> None:
    """Apply changed environment variables to the settings and the tracker."""
    reload_settings()
    reset_tracker()


def new_app() -> AppTest:
    return AppTest.from_file(str(APP_PATH), default_timeout=30)


def ok(*names: str) -> list[tuple[str, str, str]]:
    return [(name, USER, OK) for name in names]


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in at.button]}"
    return matches[0]


def turn(at: AppTest) -> dict:
    return at.session_state["ctg_turn"]


def test_full_flow_records_each_action_exactly_once(chatbot_env):
    spool = chatbot_env
    at = new_app().run()
    assert not at.exception
    at.run()  # a plain rerun records nothing
    assert actions(spool) == ok("app_start")
    assert any(USER in m.value for m in at.sidebar.text)  # the entry script ran again, not only the page

    button(at, "Suggest questions").click().run()
    assert len([b for b in at.button if b.key and b.key.startswith("suggested_")]) == 5

    at.chat_input[0].set_value("How many clients per country?").run()
    assert not at.exception
    assert "customer_count" in at.dataframe[0].value.columns
    assert "GROUP BY country" in at.code[0].value
    assert at.get("plotly_chart")
    assert any("7 rows" in m.value for m in at.markdown)
    expected = ok("app_start", "view_random_questions", *PIPELINE)
    assert actions(spool) == expected

    # reruns, toggles off and on: the stored answer is shown or hidden, nothing is recorded
    at.run()
    at.toggle(key="show_chart").set_value(False).run()
    assert not at.get("plotly_chart")
    at.toggle(key="show_sql").set_value(False).run()
    assert not at.code
    at.toggle(key="show_chart").set_value(True).run()
    at.toggle(key="show_sql").set_value(True).run()
    assert at.get("plotly_chart") and at.code
    assert actions(spool) == expected

    # choose columns -> select_columns; the Excel holds exactly those columns
    tid = turn(at).result_seq
    at.multiselect(key=f"columns_{tid}").set_value(["country"]).run()
    assert list(at.dataframe[0].value.columns) == ["country"]
    expected += ok("select_columns")
    assert actions(spool) == expected
    workbook = openpyxl.load_workbook(io.BytesIO(turn(at).excel))
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("Country",)  # the table's header
    assert len(rows) == 1 + 7

    # download -> download_results (on click, not on every rerun)
    at.get("download_button")[0].click().run()
    at.run()
    expected += ok("download_results")
    assert actions(spool) == expected

    # edit the SQL and re-run it -> edit_sql (no execute_sql), as its own turn below the first answer, with its own
    # chart and summary under the same toggles as a question (issue 13: they used to stop being automatic)
    at.text_area(key=f"edit_sql_{tid}").set_value(
        "SELECT segment, COUNT(*) AS customers FROM customers GROUP BY segment").run()
    button(at, "Run edited SQL").click().run()
    assert list(at.dataframe[-1].value.columns) == ["segment", "customers"]  # the newest turn's table
    assert list(at.dataframe[0].value.columns) == ["country"]  # the first answer is still there, as it was
    expected += ok("edit_sql", "generate_chart", "generate_summary")
    assert actions(spool) == expected
    at.run()
    assert actions(spool) == expected

    # a follow-up question runs the pipeline again
    followup = [b for b in at.button if b.key and b.key.startswith("followup_")][0]
    followup.click().run()
    assert at.session_state["ctg_turn"].question == followup.label
    expected += ok(*PIPELINE)
    assert actions(spool) == expected

    # a suggested question too; with chart and summary turned off they are not generated
    at.toggle(key="show_chart").set_value(False).run()
    at.toggle(key="show_summary").set_value(False).run()
    [b for b in at.button if b.key and b.key.startswith("suggested_")][0].click().run()
    expected += ok("generate_question", "sql_query", "execute_sql")
    assert actions(spool) == expected
    assert not at.exception
    assert all(row["session_id"] for row in spool.rows())


def test_unknown_question_declines_without_sql(chatbot_env):
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("How many moons does Jupiter have?").run()
    assert not at.exception
    assert at.info and "not" in at.info[0].value
    assert not at.dataframe and not at.code
    nearest = [b for b in at.button if b.key and b.key.startswith("nearest_")]
    assert nearest
    assert actions(spool) == ok("app_start", "generate_question", "sql_query")
    import json

    assert json.loads(spool.rows()[-1]["details"])["declined"] is True
    # a nearest question is a real question
    nearest[0].click().run()
    assert actions(spool)[3:] == ok(*PIPELINE)


def test_llm_failure_is_friendly_and_classified(chatbot_env, monkeypatch):
    spool = chatbot_env

    def boom(self, question, previous=None):
        raise RuntimeError("upstream model overloaded (sk-abcdefghijklmnopqrstuvwxyz123456)")

    monkeypatch.setattr(Assistant, "ask", boom)
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    assert not at.exception
    assert "language model could not answer" in at.error[0].value
    rows = spool.rows()
    assert actions(spool) == [("app_start", USER, OK), ("generate_question", USER, OK), ("llm_error", USER, ERROR)]
    assert rows[-1]["operation"] == "sql_query"
    assert "sk-abcdefghijklmnopqrstuvwxyz123456" not in (rows[-1]["error_message"] or "")


def test_errors_show_details_only_in_debug_mode_and_always_redacted(chatbot_env, monkeypatch, caplog):
    def boom(self, question, previous=None):
        raise RuntimeError("upstream model overloaded (sk-abcdefghijklmnopqrstuvwxyz123456)")

    monkeypatch.setattr(Assistant, "ask", boom)
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    assert "RuntimeError" not in at.error[0].value  # not shown to users...
    assert "llm_error during sql_query (RuntimeError: upstream model overloaded" in caplog.text  # ...but logged

    monkeypatch.setenv("DEBUG_LOGGING", "true")
    reconfigure()
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    shown = at.error[0].value
    assert "language model could not answer" in shown and "Debug: RuntimeError: upstream model overloaded" in shown
    assert "sk-abcdefghijklmnopqrstuvwxyz123456" not in shown + caplog.text


def test_database_failure_is_friendly_and_classified(chatbot_env, monkeypatch):
    spool = chatbot_env

    def down(self, sql):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(SampleSQLiteSource, "run_sql", down)
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    assert not at.exception
    assert "database could not be reached" in at.error[0].value
    assert actions(spool) == ok("app_start", "generate_question", "sql_query") + [("database_error", USER, ERROR)]
    assert spool.rows()[-1]["operation"] == "execute_sql"


@pytest.mark.parametrize("bad_sql", ["SELECT nope FROM nowhere", "DELETE FROM projects", "SELECT 1; DROP TABLE projects"])
def test_bad_edited_sql_is_an_sql_error(chatbot_env, bad_sql):
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    tid = turn(at).result_seq
    at.text_area(key=f"edit_sql_{tid}").set_value(bad_sql).run()
    button(at, "Run edited SQL").click().run()
    assert not at.exception
    assert "not a valid read-only query" in at.error[0].value
    assert at.dataframe  # the previous result stays
    assert actions(spool)[-1] == ("sql_error", USER, ERROR)
    assert spool.rows()[-1]["operation"] == "edit_sql"
    assert [a for a, _, _ in actions(spool)].count("execute_sql") == 1


def test_identity_header_only_when_trusted(chatbot_env, monkeypatch):
    spool = chatbot_env
    monkeypatch.setattr("ctg_app.tracking.recording.identity.request_headers", lambda: {"X-Forwarded-Email": " Boss@Elevio.COM "})
    at = new_app().run()
    assert actions(spool)[-1] == ("app_start", USER, OK)  # header ignored: trust not configured
    assert any(USER in m.value for m in at.sidebar.text)

    monkeypatch.setenv("TRUSTED_USER_HEADER", "X-Forwarded-Email")
    reconfigure()
    at = new_app().run()
    assert actions(spool)[-1] == ("app_start", "boss@elevio.com", OK)
    assert any("boss@elevio.com" in m.value for m in at.sidebar.text)


def test_missing_llm_key_is_a_clear_message(chatbot_env, monkeypatch):
    spool = chatbot_env
    monkeypatch.setenv("LLM_PROVIDER", "anthropic")
    reconfigure()
    at = new_app().run()
    at.run()
    assert not at.exception
    assert "not configured correctly" in at.error[0].value
    assert "anthropic" in at.error[0].value.lower()
    assert actions(spool) == [("app_start", USER, OK), ("llm_error", USER, ERROR)]


def test_debug_mode_lists_session_events(chatbot_env, monkeypatch):
    monkeypatch.setenv("DEBUG_LOGGING", "true")
    reconfigure()
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    shown = at.sidebar.dataframe[0].value
    # The sidebar renders after the page, so it lists the whole question's pipeline, in order.
    assert list(shown["action"]) == ["app_start", *PIPELINE[:3], "generate_chart", "generate_summary"]
    assert "execute_sql" in list(shown["action"])
