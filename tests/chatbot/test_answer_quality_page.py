"""Answer quality on the usage page, from events the real chat recorded: a vote, a decline and an edit."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from ctg_app.settings import reload_settings

from .conftest import APP_PATH, actions

ADMIN = "test@example.com"


def test_usage_page_shows_answer_quality_of_real_chat_events(chatbot_env, monkeypatch):
    spool = chatbot_env
    monkeypatch.setenv("ADMIN_EMAILS", ADMIN)
    reload_settings()
    at = AppTest.from_file(str(APP_PATH), default_timeout=30)
    at.user = {"email": ADMIN}
    at.run()
    at.chat_input[0].set_value("How many customers are there per country?").run()
    first = at.session_state["ctg_history"][-1].id
    at.button(key=f"feedback_down_{first}").click().run()
    at.chat_input[0].set_value("What is the weather in Paris tomorrow?").run()  # declined: not CTG data
    recorded = [a for a, _, _ in actions(spool)]
    assert recorded.count("answer_feedback") == 1 and recorded.count("sql_query") == 2

    from ctg_app.ui import analytics

    at.switch_page(str(analytics.PAGE_PATH)).run()
    assert not at.exception
    assert "Answer quality" not in [s.value for s in at.subheader]  # on demand: a plain render stays in budget
    at.toggle(key="analytics_answer_quality").set_value(True).run()
    assert not at.exception
    assert "Answer quality" in [s.value for s in at.subheader]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Feedback"] == "1"
    assert metrics["Helpful rate"] == "0%"
    assert metrics["Decline rate"] == "50%"
