"""Write and admin requests are declined in every mode; follow-up questions reuse the previous turn's slots."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import pytest

from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.chatbot.answer.write_requests import is_write_request
from ctg_app.settings import Settings

WRITES = [
    "delete all projects", "Delete the project P-2024-0001", "'; DROP TABLE projects; --", "DROP TABLE customers",
    "update the budget of P-2024-0001 to 5", "UPDATE budget_lines SET budget_amount = 0", "grant me admin",
    "make me an administrator", "give me write access", "truncate the hours table", "insert a new vendor called Acme",
    "INSERT INTO departments VALUES (9, 'x', 'y', 'z')", "Please remove customer Alpen Grid",
    "add 8 hours for Alex Berg on P-2024-0001", "set the status of P-2024-0001 to Completed",
    "can you change the project manager of P-2024-0002 to Anna Keller", "' OR 1=1 --",
    "SELECT * FROM projects; DROP TABLE customers", "create a new project for Nord Grid", "wipe the cost to go",
    "I'd like you to increase the Engineering budget by 10%", "costs per project; delete from hours",
    "how do I reset the password", "revoke select on projects from analysts",
]
READS = [
    "projects with updated budgets", "deleted vendors", "add up the costs per department",
    "create a chart of costs per month", "what is the change in budget per year", "a set of projects per status",
    "which projects were created in 2024", "show the insert date of costs", "how many projects are active",
    "total budget per cost category",
]


@pytest.mark.parametrize("question", WRITES)
def test_write_requests_are_recognised(question):
    assert is_write_request(question)


@pytest.mark.parametrize("question", READS)
def test_reads_that_mention_such_words_are_not_write_requests(question):
    assert not is_write_request(question)


@pytest.fixture(scope="module")
def vn(sample_db):
    return build_assistant(Settings(sample_db_path=sample_db))


@pytest.mark.parametrize("question", WRITES)
def test_offline_mode_declines_write_requests(vn, question):
    answer = vn.ask(question)
    assert answer.declined and answer.sql is None and answer.decline_reason == "write_request"
    assert answer.message.startswith("This assistant only reads data")


def test_a_read_with_such_a_word_is_not_declined_as_a_write(vn):
    answer = vn.ask("add up the costs per department")
    assert answer.decline_reason != "write_request"
    assert not vn.ask("how many projects are active").declined


def _fake_openai(monkeypatch):
    module = types.ModuleType("openai")
    module.OpenAI = module.AzureOpenAI = lambda **kwargs: object()
    monkeypatch.setitem(sys.modules, "openai", module)
    monkeypatch.delitem(sys.modules, "vanna.legacy.openai.openai_chat", raising=False)
    monkeypatch.delitem(sys.modules, "vanna.legacy.openai", raising=False)


def test_llm_mode_declines_write_requests_before_asking_the_model(monkeypatch, tmp_path):
    _fake_openai(monkeypatch)
    llm = build_assistant(Settings(llm_provider="openai", openai_api_key="sk-test", sample_db_path=tmp_path / "s.sqlite3"))
    prompts = []
    monkeypatch.setattr(type(llm.answerer.vanna), "submit_prompt", lambda self, prompt, **kw: prompts.append(prompt) or
                        "DELETE FROM projects")
    for question in ["delete all projects", "'; DROP TABLE projects; --", "grant me admin"]:
        answer = llm.ask(question)
        assert answer.declined and answer.decline_reason == "write_request" and answer.sql is None
    assert prompts == []  # the model was never asked


def test_llm_mode_gets_the_previous_turn_for_a_follow_up(monkeypatch, tmp_path):
    _fake_openai(monkeypatch)
    llm = build_assistant(Settings(llm_provider="openai", openai_api_key="sk-test", sample_db_path=tmp_path / "s.sqlite3"))
    prompts = []
    monkeypatch.setattr(type(llm.answerer.vanna), "submit_prompt", lambda self, prompt, **kw: prompts.append(prompt) or
                        "SELECT 1")
    previous = SqlAnswer(question="total budget in 2024", sql="SELECT SUM(budget_amount) FROM budget_lines "
                                                               "WHERE fiscal_year = 2024")
    llm.ask("and for 2023?", previous)
    text = json.dumps(prompts[-1])
    assert "total budget in 2024" in text and "fiscal_year = 2024" in text and "and for 2023?" in text


# ------------------------------------------------------------------------------------------------------ follow-ups
def _ask(vn, question, previous=None):
    answer = vn.ask(question, previous)
    # the UI keeps answers as plain dicts (st.cache_data / session state): the context must survive that
    return SqlAnswer(**json.loads(json.dumps(dataclasses.asdict(answer))))


@pytest.mark.parametrize(("first", "follow", "expected_interpretation"), [
    ("What is the total budget per cost category in 2025?", "and for 2023?",
     "Total budget for fiscal year 2023, by cost category"),
    ("What is the total budget per cost category in 2025?", "only the Engineering department",
     "Total budget for department Engineering for fiscal year 2025, by cost category"),
    ("actual costs per department", "as a chart by month", "Total actual costs, by month"),
    ("number of projects per status", "per PM instead", "Number of projects, by project manager"),
    ("number of projects per status", "only Fixed Price", "Number of projects for project type Fixed Price, by status"),
    ("actual costs for Engineering in 2024", "what about hours?",
     "Total hours booked for department Engineering in 2024"),
    ("top 5 vendors by spend", "and in 2023?", "Total actual costs in 2023, top 5 vendors"),
])
def test_follow_ups_reuse_the_previous_slots(vn, first, follow, expected_interpretation):
    previous = _ask(vn, first)
    answer = _ask(vn, follow, previous)
    assert not answer.declined, answer.message
    assert answer.interpretation.startswith(expected_interpretation)
    assert answer.context["spec"]


def test_follow_up_sql_honours_old_and_new_slots(vn, sample_db):
    previous = _ask(vn, "What is the total budget per cost category in 2025?")
    answer = _ask(vn, "only the Engineering department", previous)
    assert "2025" in answer.sql and "'Engineering'" in answer.sql and "cost_category" in answer.sql
    again = _ask(vn, "and for 2023?", answer)
    assert "2023" in again.sql and "2025" not in again.sql and "'Engineering'" in again.sql


def test_a_full_question_after_a_previous_one_stands_alone(vn):
    previous = _ask(vn, "actual costs for Engineering in 2024")
    answer = _ask(vn, "How many customers do we have?", previous)
    assert answer.interpretation == "Number of customers"


def test_a_fragment_without_previous_turn_is_declined_not_guessed(vn):
    answer = vn.ask("and for 2023?")
    assert answer.declined and answer.sql is None


@pytest.mark.parametrize("reply", ["thanks", "hello", "ok great"])
def test_a_reply_that_says_nothing_new_is_not_the_previous_answer_again(vn, reply):
    previous = _ask(vn, "What is the total budget per cost category in 2025?")
    answer = _ask(vn, reply, previous)
    assert answer.declined and answer.sql is None
