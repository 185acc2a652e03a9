"""AppTest: the chat as a conversation (issue 13) on the offline default, with the exact ordered events it records."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ctg_app.ui import operations
from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.data.source import SampleSQLiteSource
from ctg_app.chatbot.assistant import Assistant
from ctg_app.settings import reload_settings

from .conftest import APP_PATH, actions

USER = "test@example.com"
PIPELINE = ["generate_question", "sql_query", "execute_sql", "generate_chart", "generate_summary"]
SECRET = "sk-abcdefghijklmnopqrstuvwxyz123456"


def new_app() -> AppTest:
    return AppTest.from_file(str(APP_PATH), default_timeout=30)


def ok(*names: str) -> list[tuple[str, str, str]]:
    return [(name, USER, "ok") for name in names]


def keyed(at: AppTest, prefix: str) -> list:
    return [b for b in at.button if b.key and b.key.startswith(prefix)]


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in at.button]}"
    return matches[0]


def history(at: AppTest) -> list[dict]:
    return at.session_state["ctg_history"]


def user_messages(at: AppTest) -> list[str]:
    """What each user bubble says, in page order (an edit shows "Edited SQL")."""
    texts = []
    for message in at.chat_message:
        if message.name != "user":
            continue
        texts.append(message.text[0].value if message.text else message.markdown[0].value)
    return texts


def details(spool, action: str) -> list[dict]:
    return [json.loads(r["details"]) for r in spool.rows() if r["action"] == action]


def test_three_questions_a_follow_up_and_an_edit_render_in_order(chatbot_env):
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("How many customers are there per country?").run()
    followup = keyed(at, "followup_")[0]
    followup_question = followup.label
    followup.click().run()
    at.chat_input[0].set_value("What is the margin per project?").run()
    tid = history(at)[-1].id
    at.text_area(key=f"edit_sql_{tid}").set_value(
        "SELECT project_code, contract_value FROM projects ORDER BY contract_value DESC").run()
    at.button(key=f"run_edit_{tid}").click().run()
    assert not at.exception

    expected = ok("app_start", *PIPELINE, *PIPELINE, *PIPELINE, "edit_sql", "generate_chart", "generate_summary")
    assert actions(spool) == expected
    # every turn is still on the page, in order: the earlier answers did not vanish
    assert user_messages(at) == ["How many customers are there per country?", followup_question,
                                 "What is the margin per project?", "**Edited SQL**"]
    assert len(at.chat_message) == 8
    assert [list(d.value.columns) for d in at.dataframe][0] == ["country", "customer_count"]
    assert list(at.dataframe[-1].value.columns) == ["project_code", "contract_value"]
    charted = [t for t in history(at) if t.chart is not None and t.df.shape != (1, 1)]  # 1 value: a metric
    assert [c.key for c in at.get("plotly_chart")] == [f"chart_{t.id}" for t in charted]
    assert [t.kind for t in history(at)] == ["question", "question", "question", "edit"]
    assert history(at)[1].follows == history(at)[0].id  # the follow-up knows what it follows
    # the edit is its own turn with its own chart and summary; the follow-ups stay with the question they belong to
    edit = history(at)[-1]
    assert edit.chart is not None and "**" in edit.summary and not edit.followups
    assert keyed(at, f"followup_{history(at)[2].id}_")

    # rendering the history again records nothing
    at.run()
    at.toggle(key="show_table").set_value(False).run()
    at.toggle(key="show_table").set_value(True).run()
    assert actions(spool) == expected


def test_whitespace_only_question_is_ignored_without_an_event(chatbot_env):
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("   \n\t ").run()
    assert not at.exception and not at.error
    assert actions(spool) == ok("app_start")  # no app_error: it does not count in the error rate
    assert not history(at)
    assert keyed(at, "welcome_")  # still the first screen


def test_welcome_questions_are_stable_buttons_and_record_nothing(chatbot_env):
    spool = chatbot_env
    at = new_app().run()
    first = [b.label for b in keyed(at, "welcome_")]
    assert 4 <= len(first) <= 6 and len(set(first)) == len(first)
    at.run()
    at.run()
    assert [b.label for b in keyed(at, "welcome_")] == first  # not re-randomised
    assert actions(spool) == ok("app_start")
    keyed(at, "welcome_")[1].click().run()
    assert history(at)[0].question == first[1]
    assert not keyed(at, "welcome_")  # the conversation replaces the welcome
    assert actions(spool) == ok("app_start", *PIPELINE)
    # "New conversation" clears the history, records nothing, and shows the same examples
    button(at, "New conversation").click().run()
    assert not history(at) and [b.label for b in keyed(at, "welcome_")] == first
    assert actions(spool) == ok("app_start", *PIPELINE)


def test_feedback_records_one_answer_feedback_per_click(chatbot_env):
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("How many customers are there per country?").run()
    tid = history(at)[-1].id
    at.button(key=f"feedback_up_{tid}").click().run()
    at.run()
    assert actions(spool)[-1] == ("answer_feedback", USER, "ok")
    assert [a for a, _, _ in actions(spool)].count("answer_feedback") == 1
    at.button(key=f"feedback_down_{tid}").click().run()
    at.selectbox(key=f"feedback_reason_{tid}").set_value("Wrong numbers")
    at.text_input(key=f"feedback_comment_{tid}").set_value(f"Germany is missing {SECRET}")
    at.button(key=f"FormSubmitter:feedback_form_{tid}-Send").click().run()
    at.run()
    assert not at.exception
    votes = details(spool, "answer_feedback")
    assert [v["helpful"] for v in votes] == [True, False, False]
    assert all(v["turn"] == tid and v["edited"] is False for v in votes)
    assert "reason" not in votes[1] and "comment" not in votes[0]  # no free text unless the user typed it
    assert votes[2]["reason"] == "Wrong numbers" and votes[2]["comment"].startswith("Germany is missing")
    assert SECRET not in json.dumps(votes)  # redacted like every detail
    # the interpretation shown above the answer is recorded as its short hash on every vote
    shown = history(at)[-1].answer.interpretation
    assert shown and {v["interpretation_id"] for v in votes} == {hashlib.sha256(shown.encode()).hexdigest()[:12]}


def test_edited_sql_that_fails_shows_the_database_reason_redacted_and_bounded(chatbot_env, monkeypatch):
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    tid = history(at)[-1].id
    at.text_area(key=f"edit_sql_{tid}").set_value("SELECT nope FROM customers").run()
    button(at, "Run edited SQL").click().run()
    shown = at.error[0].value
    assert "no such column: nope" in shown  # the user wrote that SQL: they need the database's reason to fix it
    assert actions(spool)[-1] == ("sql_error", USER, "error") and spool.rows()[-1]["operation"] == "edit_sql"
    assert history(at)[-1].kind == "edit" and user_messages(at)[-1] == "**Edited SQL**"
    # what the app's read-only check refuses is explained as such
    edit_id = history(at)[-1].id
    at.text_area(key=f"edit_sql_{edit_id}").set_value("DELETE FROM projects").run()
    at.button(key=f"run_edit_{edit_id}").click().run()
    assert "Why:" in at.error[-1].value and "The database said" not in at.error[-1].value

    def noisy(self, sql):
        raise sqlite3.OperationalError(f"no such column: x (token {SECRET}) " + "y" * 2000)

    monkeypatch.setattr(SampleSQLiteSource, "run_sql", noisy)
    edit_id = history(at)[-1].id
    at.text_area(key=f"edit_sql_{edit_id}").set_value("SELECT x FROM customers").run()
    at.button(key=f"run_edit_{edit_id}").click().run()
    shown = at.error[-1].value
    assert "no such column: x" in shown and SECRET not in shown
    assert len(shown) < 600


def test_a_query_stopped_by_the_time_limit_says_so_not_that_the_database_is_down(chatbot_env, monkeypatch):
    spool = chatbot_env
    monkeypatch.setenv("CHAT_QUERY_TIMEOUT_S", "0.5")
    reload_settings()
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    tid = history(at)[-1].id
    forever = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
    at.text_area(key=f"edit_sql_{tid}").set_value(forever).run()
    button(at, "Run edited SQL").click().run()
    shown = at.error[-1].value
    assert "longer than 0.5 s and was stopped" in shown and "could not be reached" not in shown
    assert actions(spool)[-1] == ("database_error", USER, "error")


def test_one_number_is_a_metric_and_row_counts_read_well(chatbot_env):
    at = new_app().run()
    at.chat_input[0].set_value("How many projects are there?").run()
    assert at.metric[0].label == "Project count" and at.metric[0].value == "120"
    at.chat_input[0].set_value("Which projects are on hold?").run()
    caption = [c.value for c in at.caption if " row" in c.value][-1]
    assert caption.endswith("columns") and ("1 row ·" in caption or " rows ·" in caption)
    assert "1 rows" not in " ".join(c.value for c in at.caption)


def test_no_columns_selected_says_so(chatbot_env):
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("How many customers are there per country?").run()
    tid = history(at)[-1].id
    at.multiselect(key=f"columns_{tid}").set_value([]).run()
    assert any("No columns selected" in w.value for w in at.warning)
    assert not at.dataframe
    assert at.get("download_button")[0].proto.disabled
    assert actions(spool)[-1] == ("select_columns", USER, "ok")


def test_capped_results_say_so(chatbot_env, monkeypatch):
    original = SampleSQLiteSource.run_sql

    def capped(self, sql):
        df = original(self, sql)
        df.attrs.update(capped=True, row_cap=5)
        return df

    monkeypatch.setattr(SampleSQLiteSource, "run_sql", capped)
    at = new_app().run()
    at.chat_input[0].set_value("How many customers are there per country?").run()
    assert any(c.value == "Showing the first 5 rows (result capped)." for c in at.caption)


@dataclasses.dataclass(frozen=True)
class RichAnswer(SqlAnswer):
    """The answers helper's SqlAnswer (interpretation, confidence, intent, alternatives, context)."""

    interpretation: str = ""
    confidence: str = ""
    intent: str | None = None
    alternatives: tuple[str, ...] = ()
    decline_reason: str = ""
    context: dict = dataclasses.field(default_factory=dict)


def test_interpretation_alternatives_and_follow_up_context(chatbot_env, monkeypatch):
    spool = chatbot_env
    seen: list[tuple[str, object]] = []
    original = Assistant.ask

    def ask(self, question, previous=None):
        seen.append((question, previous))
        fields = dataclasses.asdict(original(self, question))
        fields.update(interpretation=f"Interpreted: {question}", confidence="medium", intent="customers_by_country",
                      alternatives=("How many customers do we have?",), context={"topic": "customers"})
        return RichAnswer(**fields)

    monkeypatch.setattr(Assistant, "ask", ask)
    monkeypatch.setattr(operations, "SqlAnswer", RichAnswer)
    at = new_app().run()
    at.chat_input[0].set_value("How many customers are there per country?").run()
    assert not at.exception
    header = [m.value for m in at.markdown if m.value.startswith("**Answered as:**")]
    assert header and "Interpreted: How many customers are there per country?" in header[0]
    assert "Confidence: medium" in header[0]
    alternatives = keyed(at, "didyoumean_")
    assert [b.label for b in alternatives] == ["How many customers do we have?"]
    assert details(spool, "sql_query")[-1]["intent"] == "customers_by_country"
    assert history(at)[-1].chart.layout.title.text.startswith("Interpreted: How many")

    # a follow-up button and a typed question both carry the previous answer
    keyed(at, "followup_")[0].click().run()
    assert seen[-1][1] is not None and seen[-1][1].context == {"topic": "customers"}
    at.chat_input[0].set_value("and per segment?").run()
    assert seen[-1][0] == "and per segment?" and isinstance(seen[-1][1], RichAnswer)
    # feedback names the intent
    at.button(key=f"feedback_down_{history(at)[0].id}").click().run()
    vote = details(spool, "answer_feedback")[-1]
    assert vote["intent"] == "customers_by_country" and vote["confidence"] == "medium" and vote["helpful"] is False
    assert len(vote["interpretation_id"]) == 12


def test_summary_is_written_on_the_whole_result(chatbot_env):
    at = new_app().run()
    at.chat_input[0].set_value("What is the margin per project?").run()
    turn = history(at)[-1]
    df: pd.DataFrame = turn.df
    assert len(df) > 100
    assert f"**{len(df)} rows**" in turn.summary
    assert turn.chart_plot_note.startswith(f"The chart shows the top 30 of {len(df)} rows")
    assert any(c.value == turn.chart_plot_note for c in at.caption)


def test_history_state_is_bounded_and_cleared():
    from ctg_app.chatbot import conversation as conv

    state: dict = {}
    for i in range(conv.MAX_TURNS + 5):
        conv.add_turn(state, conv.QUESTION, f"q{i}")
    assert len(conv.history(state)) == conv.MAX_TURNS
    assert conv.history(state)[0].question == "q5" and state["ctg_turn"].question == f"q{conv.MAX_TURNS + 4}"
    conv.add_turn(state, conv.SUGGESTIONS, "", suggestions=["a"])
    assert state["ctg_turn"].kind == conv.QUESTION  # suggestions are not an answer
    conv.clear(state)
    assert conv.history(state) == [] and "ctg_turn" not in state
    assert conv.add_turn(state, conv.QUESTION, "again").id == conv.MAX_TURNS + 7  # ids never repeat


def test_the_real_engine_interprets_each_answer_follows_up_and_declines_with_alternatives(chatbot_env):
    """No stand-in: the offline engine's interpretation is shown above every answer; a typed follow-up keeps the
    previous question's measure and grouping; an unanswerable question is declined with questions it can answer."""
    spool = chatbot_env
    at = new_app().run()
    at.chat_input[0].set_value("total actual costs per department").run()
    at.chat_input[0].set_value("and for 2023?").run()
    headers = [m.value for m in at.markdown if m.value.startswith("**Answered as:**")]
    assert len(headers) == 2
    assert "Total actual costs" in headers[0] and "by department" in headers[0]
    assert "2023" in headers[1] and "by department" in headers[1]  # the follow-up kept the grouping
    at.chat_input[0].set_value("average margin by business unit").run()
    assert history(at)[-1].answer.declined
    offers = keyed(at, "nearest_")
    assert offers and all("margin" in b.label.lower() for b in offers)
    assert [d["declined"] for d in details(spool, "sql_query")] == [False, False, True]


def test_chart_and_summary_on_request_record_one_event_each_and_turns_stay_typed(chatbot_env):
    """With the sidebar toggles off the answer has no chart or summary; "Create chart" and "Summarise" are requests
    like every other button: one click, one event, and the turn (a typed Turn) keeps the result across reruns."""
    from ctg_app.chatbot import conversation as conv

    spool = chatbot_env
    at = new_app().run()
    at.toggle(key="show_chart").set_value(False).run()
    at.toggle(key="show_summary").set_value(False).run()
    at.chat_input[0].set_value("How many customers are there per country?").run()
    turn = history(at)[-1]
    assert isinstance(turn, conv.Turn) and turn.chart is None and not turn.summary
    assert actions(spool) == ok("app_start", "generate_question", "sql_query", "execute_sql")
    at.toggle(key="show_chart").set_value(True).run()
    at.toggle(key="show_summary").set_value(True).run()
    assert actions(spool) == ok("app_start", "generate_question", "sql_query", "execute_sql")  # showing records nothing
    button(at, "Create chart").click().run()
    button(at, "Summarise").click().run()
    at.run()
    assert not at.exception
    assert actions(spool) == ok("app_start", "generate_question", "sql_query", "execute_sql", "generate_chart",
                                "generate_summary")
    turn = history(at)[-1]
    assert turn.chart is not None and "**" in turn.summary
    assert [c.key for c in at.get("plotly_chart")] == [f"chart_{turn.id}"]
    assert not [b for b in at.button if b.label in ("Create chart", "Summarise")]


def test_a_misspelt_turn_field_fails_loudly():
    from ctg_app.chatbot import conversation as conv

    state: dict = {}
    turn = conv.add_turn(state, conv.QUESTION, "q")
    turn.summary = "ok"
    with pytest.raises(AttributeError):
        turn.sumary = "lost"  # a dict took this silently, and the page showed no summary
    with pytest.raises(TypeError):
        conv.add_turn(state, conv.QUESTION, "q", folows=1)
