"""The offline retrieval store and model, charts, Excel, and the LLM provider factory."""

from __future__ import annotations

import io
import sys
import types

import openpyxl
import pandas as pd
import pytest

from ctg_app.chatbot.present.charts import build_chart, can_chart
from ctg_app.chatbot.present.excel import to_excel_bytes
from ctg_app.chatbot.answer.providers import LlmConfigError, provider_name
from ctg_app.chatbot.answer.retrieval import normalise
from ctg_app.chatbot.data.training import load_training
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.settings import Settings, reload_settings
from ctg_app.errors import ChartError, SqlValidationError


@pytest.fixture(scope="module")
def vn(tmp_path_factory):
    settings = Settings(sample_db_path=tmp_path_factory.mktemp("db") / "s.sqlite3")
    return build_assistant(settings)


@pytest.mark.parametrize(
    ("asked", "trained"),
    [
        ("How many clients do we have?", "How many customers do we have?"),
        ("number of clients", "How many customers do we have?"),
        ("what did we spend per client", "What are the actual costs per customer?"),
        ("top 10 clients by revenue", "Who are the top 10 customers by contract value?"),
        ("show me the CTG per project", "What is the latest cost to go per project?"),
        ("projects on hold", "Which projects are on hold?"),
        ("costs per month 2024", "What were the actual costs per month in 2024?"),
    ],
)
def test_paraphrases_find_the_trained_question(vn, asked, trained):
    answer = vn.ask(asked)
    expected = {e.question: e.sql for e in load_training(dialect="sqlite").examples}[trained]
    assert not answer.declined and answer.sql == expected


@pytest.mark.parametrize("asked", ["How many moons does Jupiter have?", "What is the weather in Paris?", "hello",
                                   "Who won the world cup in 2014?", "What is the capital of France?"])
def test_unknown_questions_decline_with_nearest(vn, asked):
    answer = vn.ask(asked)
    assert answer.declined and answer.sql is None and answer.message
    assert len(answer.nearest) == 3


def test_answers_are_read_only_sql_that_runs_or_a_decline(vn):
    # The engine composes SQL for questions it understands (not only trained SQL): what it returns must pass the
    # read-only policy and run; what it cannot answer is declined with a reason, never answered with a guess.
    answered = {}
    for asked in ["budget by year", "labour", "hours per role", "margin", "vendors", "zzz", "DROP TABLE projects"]:
        answer = vn.ask(asked)
        if answer.declined:
            assert answer.sql is None and answer.message and answer.decline_reason
            continue
        frame = vn.data_source.run_sql(vn.validate(answer.sql))
        assert len(frame) > 0 and answer.interpretation
        answered[asked] = answer
    assert {"budget by year", "hours per role"} <= set(answered)  # understood questions are answered
    assert vn.ask("zzz").decline_reason == "out_of_domain"
    assert vn.ask("DROP TABLE projects").decline_reason == "write_request"


def test_every_trained_question_retrieves_itself(vn):
    for example in load_training(dialect="sqlite").examples:
        assert vn.ask(example.question).sql == example.sql


def test_store_interface(vn):
    assert len(vn.questions()) >= 30
    store = vn.answerer.store
    data = store.get_training_data()
    assert set(data["training_data_type"]) == {"sql", "ddl", "documentation"}
    assert store.get_similar_question_sql("customers per country")[0]["question"] == \
        "How many customers are there per country?"
    assert len(store.generate_embedding("projects")) > 0
    assert store.get_related_ddl("x") and store.get_related_documentation("x")
    assert normalise("Number of Clients?") == "how many customers"


def test_sql_validation(vn):
    assert vn.validate("SELECT 1")
    assert vn.validate("WITH a AS (SELECT 1 AS x) SELECT x FROM a")
    for bad in ["", "DELETE FROM projects", "SELECT 1; DROP TABLE projects", "SELEC oops", "I cannot answer that"]:
        with pytest.raises(SqlValidationError):
            vn.validate(bad)


def test_summary_and_followups(vn):
    df = pd.DataFrame({"country": ["A", "B"], "n": [3, 5]})
    # offline, the summary is the one summariser of present/summary.py, on the whole frame
    text = vn.summarize("How many per country?", df)
    assert "**2 rows**" in text and "Total n **8**" in text and "Highest n: **B** (5)" in text
    assert vn.summarize("How many?", pd.DataFrame({"n": [42]})) == "N: **42**."
    assert vn.summarize("How many?", pd.DataFrame()) == "No rows match this question."
    answer = vn.ask("How many customers are there per country?")
    followups = vn.followups(answer.question, answer.sql, df)
    assert followups and answer.question not in followups and len(followups) <= 4


def test_charts():
    assert type(build_chart(pd.DataFrame({"c": ["a", "b"], "v": [1, 2]})).data[0]).__name__ == "Bar"
    assert type(build_chart(pd.DataFrame({"month": [1, 2], "v": [1, 2]})).data[0]).__name__ == "Scatter"
    assert type(build_chart(pd.DataFrame({"v": [7]})).data[0]).__name__ == "Indicator"
    assert not can_chart(pd.DataFrame({"c": ["a"]}))
    with pytest.raises(ChartError):
        build_chart(pd.DataFrame({"c": ["a"]}))


def test_excel_holds_exactly_the_selected_columns():
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [1.5, 2.5]})
    sheet = openpyxl.load_workbook(io.BytesIO(to_excel_bytes(df, ["c", "a"]))).active
    assert list(sheet.iter_rows(values_only=True)) == [("C", "A"), (1.5, 1), (2.5, 2)]


def test_unknown_provider_and_missing_packages(monkeypatch):
    with pytest.raises(LlmConfigError, match="Unknown LLM_PROVIDER"):
        provider_name(Settings(llm_provider="gpt5"))
    assert provider_name(Settings(llm_provider="Azure")) == "azure_openai"
    monkeypatch.setitem(sys.modules, "anthropic", None)  # import fails as if not installed
    with pytest.raises(LlmConfigError, match=r"ctg-app\[anthropic\]"):
        build_assistant(Settings(llm_provider="anthropic"))


def _fake_openai(monkeypatch):
    created = []

    class Client:
        def __init__(self, **kwargs):
            created.append(kwargs)

    module = types.ModuleType("openai")
    module.OpenAI = Client
    module.AzureOpenAI = Client
    monkeypatch.setitem(sys.modules, "openai", module)
    monkeypatch.delitem(sys.modules, "vanna.legacy.openai.openai_chat", raising=False)
    monkeypatch.delitem(sys.modules, "vanna.legacy.openai", raising=False)
    return created


def test_openai_provider_is_built_lazily_without_network(monkeypatch, tmp_path):
    created = _fake_openai(monkeypatch)
    db = tmp_path / "s.sqlite3"
    with pytest.raises(LlmConfigError, match="OPENAI_API_KEY"):
        build_assistant(Settings(llm_provider="openai", sample_db_path=db))
    vn = build_assistant(Settings(llm_provider="openai", openai_api_key="sk-test", sample_db_path=db))
    assert created == [{"api_key": "sk-test", "timeout": 60.0, "max_retries": 2}]  # never the client's 600 s
    assert vn.answerer.vanna.config["model"] == "gpt-4o-mini" and vn.dialect == "SQLite"
    with pytest.raises(LlmConfigError, match="AZURE_OPENAI_ENDPOINT"):
        build_assistant(Settings(llm_provider="azure_openai", openai_api_key="k", sample_db_path=db))
    vn = build_assistant(Settings(llm_provider="azure_openai", openai_api_key="k", llm_model="dep",
                              azure_openai_endpoint="https://x.openai.azure.com", sample_db_path=db))
    assert created[-1]["azure_endpoint"] == "https://x.openai.azure.com" and vn.answerer.vanna.config["model"] == "dep"
    assert (created[-1]["timeout"], created[-1]["max_retries"]) == (60.0, 2)


def test_llm_answers_go_through_vanna_generate_sql(monkeypatch, tmp_path):
    _fake_openai(monkeypatch)
    vn = build_assistant(Settings(llm_provider="openai", openai_api_key="sk-test", sample_db_path=tmp_path / "s.sqlite3"))
    prompts = []
    monkeypatch.setattr(type(vn.answerer.vanna), "submit_prompt",
                        lambda self, prompt, **kw: prompts.append(prompt) or "```sql\nSELECT COUNT(*) FROM projects\n```")
    answer = vn.ask("How many projects?")
    assert answer.sql == "SELECT COUNT(*) FROM projects" and not answer.declined
    assert "SQLite" in prompts[0][0]["content"]


def test_ollama_is_not_contacted_at_build(monkeypatch, tmp_path):
    calls = []

    class Client:
        def __init__(self, host, timeout=None):
            calls.append(("init", host))

        def list(self):
            calls.append("list")
            return {"models": []}

        def pull(self, model):
            calls.append("pull")

    module = types.ModuleType("ollama")
    module.Client = Client
    monkeypatch.setitem(sys.modules, "ollama", module)
    vn = build_assistant(Settings(llm_provider="ollama", sample_db_path=tmp_path / "s.sqlite3"))
    assert calls == [("init", "http://127.0.0.1:11434")]
    assert vn.answerer.vanna.model == "llama3.1:latest"
    reload_settings()


def test_anthropic_and_ollama_clients_get_the_timeout_and_retries(monkeypatch, tmp_path):
    created = []

    class Client:
        def __init__(self, *args, **kwargs):
            created.append((args, kwargs))

    for name in ("anthropic", "ollama"):
        module = types.ModuleType(name)
        module.Anthropic = module.Client = Client
        monkeypatch.setitem(sys.modules, name, module)
    for name in ("vanna.legacy.anthropic.anthropic_chat", "vanna.legacy.anthropic", "vanna.legacy.ollama.ollama",
                 "vanna.legacy.ollama"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    db = tmp_path / "s.sqlite3"
    build_assistant(Settings(llm_provider="anthropic", anthropic_api_key="k", llm_timeout_s=12.5, llm_max_retries=1,
                         sample_db_path=db))
    assert created[-1][1] == {"api_key": "k", "timeout": 12.5, "max_retries": 1}
    vn = build_assistant(Settings(llm_provider="ollama", llm_timeout_s=12.5, sample_db_path=db))
    assert vn.answerer.vanna.ollama_timeout == 12.5  # vanna's own default is 240 s
    assert created[-1][1]["timeout"].read == 12.5
