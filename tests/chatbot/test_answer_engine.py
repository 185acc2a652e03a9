"""The offline answering engine: slots, template choice, the never-drop-a-constraint rule, typos, interpretation.

Answers are checked by running the engine's SQL and an independently written reference query on the real sample
database and comparing the rows — the symptoms of the issue ("a year ignored", "a filter ignored", "a grouping
ignored", "the wrong measure") are all visible as different rows.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3

import pandas as pd
import pytest

from ctg_app.chatbot.answering.lexicon import LexiconCache
from ctg_app.chatbot.answering.understanding import parse
from ctg_app.chatbot.data.source import SampleSQLiteSource
from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.data.training import load_training
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.settings import Settings


@pytest.fixture(scope="module")
def source(sample_db):
    return SampleSQLiteSource(sample_db)


@pytest.fixture(scope="module")
def vn(sample_db, source):
    return build_assistant(Settings(sample_db_path=sample_db), data_source=source)


@pytest.fixture(scope="module")
def lex(source):
    return LexiconCache(source.run_sql).get()


def rows(df: pd.DataFrame, columns: list[int] | None = None) -> list[tuple]:
    cols = columns if columns is not None else list(range(df.shape[1]))
    return sorted(tuple(round(v, 2) if isinstance(v, float) else v for v in df.iloc[i, cols]) for i in range(len(df)))


# ------------------------------------------------------------------------------------------------ slot recognition
@pytest.mark.parametrize(("question", "expected"), [
    ("the 2025 budget by cost category",
     {"measure": "budget", "groups": ["cost_category"], "time": ("2025-01-01", "2026-01-01")}),
    ("actual costs for the Engineering department", {"measure": "actual_cost", "filters": {"department": ["Engineering"]}}),
    ("completed projects", {"entity": "project", "filters": {"status": ["Completed"]}}),
    ("number of projects per PM", {"entity": "project", "count": True, "groups": ["project_manager"]}),
    ("top 5 vendors by spend", {"measure": "actual_cost", "groups": ["vendor"], "top": 5}),
    ("T&M projects in Germany", {"entity": "project", "filters": {"project_type": ["Time & Material"],
                                                                  "country": ["Germany"]}}),
    ("CTG of on-hold projects", {"measure": "ctg", "filters": {"status": ["On Hold"]}}),
    ("EAC per department", {"measure": "eac", "groups": ["department"]}),
    ("FY24 budget", {"measure": "budget", "time": ("2024-01-01", "2025-01-01")}),
    ("costs in Q3 2024", {"measure": "actual_cost", "time": ("2024-07-01", "2024-10-01")}),
    ("spend in H1 2025", {"measure": "actual_cost", "time": ("2025-01-01", "2025-07-01")}),
    ("hours in March 2024", {"measure": "hours", "time": ("2024-03-01", "2024-04-01")}),
    ("burn per month in 2024", {"measure": "actual_cost", "groups": ["month"]}),
    ("labour costs of Siemens", {"measure": "actual_cost", "filters": {"cost_category": ["Labour"],
                                                                       "vendor": ["Siemens"]}}),
    ("hours booked by Alex Berg", {"measure": "hours", "filters": {"employee": ["Alex Berg"]}}),
    ("projects of Keller", {"entity": "project", "filters": {"project_manager": ["Anna Keller"]}}),
    ("budget overruns", {"measure": "overspend"}),
    ("which department has the most projects", {"entity": "project", "count": True, "groups": ["department"], "top": 1}),
    ("actual costs for project P-2024-0001", {"measure": "actual_cost", "filters": {"project": ["P-2024-0001"]}}),
    ("projects that started after 2023", {"entity": "project", "date_field": "start", "time": ("2024-01-01", "2036-01-01")}),
    ("costs up to 2024", {"measure": "actual_cost", "time": ("2020-01-01", "2025-01-01")}),
    ("who booked the most hours", {"measure": "hours", "groups": ["employee"], "top": 1}),
    ("vendors by spend", {"measure": "actual_cost", "groups": ["vendor"]}),
    ("Sofia Rossi's projects", {"entity": "project", "filters": {"project_manager": ["Sofia Rossi"]}}),
    ("forecast to complete per cost category", {"measure": "ctg", "groups": ["cost_category"], "filters": {}}),
    ("which projects is Lukas Meyer running", {"entity": "project", "filters": {"project_manager": ["Lukas Meyer"]}}),
    ("costs of Grid Upgrade 3", {"measure": "actual_cost", "filters": {"project_name": ["Grid Upgrade 3"]}}),
    ("budget for each cost category in fiscal 2024", {"measure": "budget", "groups": ["cost_category"]}),
    ("spent between January and June 2025", {"measure": "actual_cost", "time": ("2025-01-01", "2025-07-01")}),
    ("how much budget is left", {"measure": "budget_vs_actual"}),
    ("How did total CTG evolve over the forecast dates?", {"measure": "ctg", "groups": ["forecast_date"]}),
])
def test_slot_recognition(lex, question, expected):
    spec = parse(question, lex)
    assert not spec.problems and not spec.unknown, (spec.problems, spec.unknown)
    for name, value in expected.items():
        if name == "time":
            assert (spec.time["start"], spec.time["end"]) == value
        elif name == "top":
            assert spec.top["n"] == value
        else:
            assert getattr(spec, name) == value, name


# ------------------------------------------------------------------------------------------------- template choice
@pytest.mark.parametrize(("question", "intent"), [
    ("How many clients do we have?", "count_customer.total"),
    ("customers per country", "count_customer.by_country"),
    ("top 10 clients by revenue", "contract_value.top"),
    ("margin per project", "margin.by_project"),
    ("which projects are over budget", "overspend.by_project"),
    ("cost to go over time", "ctg_series.by_forecast_date"),
    ("billable share per role", "billable_share.by_role"),
    ("list the active projects", "list_project"),
    ("average duration per project type", "duration.by_project_type"),
])
def test_template_choice(vn, question, intent):
    answer = vn.ask(question)
    assert not answer.declined, answer.message
    assert answer.intent == intent


# --------------------------------------------------------------------- the failure shapes: right rows now
@pytest.mark.parametrize(("question", "reference"), [
    # a year in the question was ignored (all years)
    ("the 2025 budget by cost category",
     "SELECT cost_category, SUM(budget_amount) FROM budget_lines WHERE fiscal_year = 2025 GROUP BY 1"),
    # a filter was ignored (all departments)
    ("total actual costs for the Engineering department",
     "SELECT SUM(a.amount) FROM actual_costs a JOIN projects p USING (project_id) JOIN departments d "
     "USING (department_id) WHERE d.department_name = 'Engineering'"),
    # a status was ignored (all projects)
    ("completed projects", "SELECT project_code FROM projects WHERE status = 'Completed'"),
    # a grouping was ignored (one total)
    ("number of projects per PM", "SELECT project_manager, COUNT(*) FROM projects GROUP BY 1"),
    # the wrong measure (top employees by hours)
    ("top 5 vendors by spend", "SELECT vendor, SUM(amount) s FROM actual_costs WHERE vendor <> 'Internal' "
                               "GROUP BY 1 ORDER BY s DESC LIMIT 5"),
    # a list answered with a count
    ("which projects are planned", "SELECT project_code FROM projects WHERE status = 'Planned'"),
    # budget versus actual costs of one fiscal year: both sides for that year
    ("budget vs actual in 2024", "SELECT (SELECT SUM(budget_amount) FROM budget_lines WHERE fiscal_year = 2024), "
                                 "(SELECT SUM(amount) FROM actual_costs WHERE posting_date LIKE '2024-%')"),
    # a time series answered with one total
    ("hours per month in 2025", "SELECT CAST(strftime('%m', work_date) AS INTEGER), SUM(hours) FROM hours "
                                "WHERE work_date LIKE '2025-%' GROUP BY 1"),
])
def test_every_constraint_is_in_the_result(vn, source, question, reference):
    answer = vn.ask(question)
    assert not answer.declined, answer.message
    got, want = source.run_sql(answer.sql), source.run_sql(reference)
    assert len(got) == len(want)
    # the reference columns are found, with the same rows, among the answer's columns
    picked = []
    for col in range(want.shape[1]):
        target = sorted(round(v, 2) if isinstance(v, float) else v for v in want.iloc[:, col])
        picked.append(next(c for c in range(got.shape[1]) if c not in picked and sorted(
            round(v, 2) if isinstance(v, float) else v for v in got.iloc[:, c]) == target))
    assert rows(got, picked) == rows(want)


# ----------------------------------------------------------------------------------- never drop a constraint
@pytest.mark.parametrize(("question", "why"), [
    ("budget per vendor", "vendor"),                        # budgets have no vendor
    ("budget in March 2024", "March 2024"),                 # budgets are per fiscal year
    ("costs in the past 3 months", "relative date"),   # only year/quarter/month/YTD are resolved
    ("projects without budget", "negation"),           # a negation of a measure, not a value
    ("hours per week", "week"),
    ("costs per day", "days"),
    ("average margin per department", "average"),
    ("revenue in 2024", "started or end"),
    ("costs in 2023, 2024 and 2025", "more than one time window"),
    ("cost to go for 2024", "snapshot"),
    ("hours booked by Berg", "Alex Berg"),                   # several employees are called Berg
    ("EAC per vendor", "vendor"),
    ("top customers", "without saying by what"),
    ("costs broken down", "without saying by what"),
    ("top 5 and bottom 5 projects by margin", "both directions"),
    ("internal costs", "project type or the vendor"),
    ("latest actual costs", "latest"),
    ("top 5 projects per department", "without saying by what"),
    ("costs per project for the top 5 customers", "ranking within a breakdown"),
    ("projects over 1 million", "without saying of what"),
    ("hours left", "remaining"),
])
def test_a_constraint_that_cannot_be_honoured_declines_with_answerable_alternatives(vn, question, why):
    answer = vn.ask(question)
    assert answer.declined and answer.sql is None
    assert answer.decline_reason in ("unsupported_constraint", "ambiguous")
    assert why in answer.message
    assert answer.alternatives
    for alternative in answer.alternatives:
        followed = vn.ask(alternative)
        assert not followed.declined and followed.sql, alternative


def test_alternatives_keep_the_users_values(vn):
    answer = vn.ask("Engineering budget per vendor in 2024")
    assert answer.declined
    assert any("Engineering" in a and "2024" in a for a in answer.alternatives), answer.alternatives
    berg = vn.ask("hours booked by Berg")
    assert all("Berg" in a for a in berg.alternatives)


def test_recognised_values_always_reach_the_sql(vn):
    """Property: every value the engine recognised is a literal in the SQL it answers with."""
    questions = ["actual costs for Digital Services in 2024 per month", "hours of Clara Koch per project",
                 "contract value of Finance customers in Germany", "CTG per category for Fixed Price projects",
                 "number of Mid-Market customers", "budget of the Advisory business unit for FY2025",
                 "travel spend with Lufthansa per quarter in 2024", "margin of active projects per PM"]
    lex = vn.answerer.engine.lexicon.get()
    for question in questions:
        answer = vn.ask(question)
        assert not answer.declined, (question, answer.message)
        spec = parse(question, lex)
        for values in spec.filters.values():
            for value in values:
                assert f"'{value}'" in answer.sql, (question, value)
                assert value in answer.interpretation, (question, value)


# --------------------------------------------------------------------------------------------------------- typos
@pytest.mark.parametrize(("question", "reference"), [
    ("how many custmers do we have", "SELECT COUNT(*) FROM customers"),
    ("budgt per cost category", "SELECT cost_category, SUM(budget_amount) FROM budget_lines GROUP BY 1"),
    ("hours per projct", "SELECT p.project_code, SUM(h.hours) FROM hours h JOIN projects p USING (project_id) GROUP BY 1"),
    ("contract vaule per department", "SELECT d.department_name, SUM(p.contract_value) FROM projects p "
                                      "JOIN departments d USING (department_id) GROUP BY 1"),
    ("total budget for fiscal yaer 2024", "SELECT SUM(budget_amount) FROM budget_lines WHERE fiscal_year = 2024"),
    ("actual costs in the Enginering department",
     "SELECT SUM(a.amount) FROM actual_costs a JOIN projects p USING (project_id) JOIN departments d "
     "USING (department_id) WHERE d.department_name = 'Engineering'"),
])
def test_one_typo_is_tolerated_and_said(vn, source, question, reference):
    answer = vn.ask(question)
    assert not answer.declined, answer.message
    assert answer.confidence == "medium" and "read “" in answer.message
    got, want = source.run_sql(answer.sql), source.run_sql(reference)
    assert rows(got.iloc[:, [0, got.shape[1] - 1]] if want.shape[1] == 2 else got.iloc[:, [-1]]) == rows(want)


def test_custmers_alone_is_not_off_topic(vn):
    answer = vn.ask("custmers")
    assert answer.decline_reason != "out_of_domain"
    assert any("customers" in a for a in answer.alternatives)


# ------------------------------------------------------------------------------------- interpretation, confidence
def test_interpretation_and_confidence_on_every_answer(vn):
    questions = [e.question for e in load_training(dialect="sqlite").examples] + [
        "the 2025 budget by cost category", "top 3 projects by margin", "number of T&M projects",
        "hours booked by Alex Berg per project", "customers per segment", "what is the status of P-2024-0001"]
    for question in questions:
        answer = vn.ask(question)
        assert not answer.declined, question
        assert answer.interpretation and answer.confidence in ("high", "medium", "low") and answer.intent, question
    declined = vn.ask("How many moons does Jupiter have?")
    assert declined.declined and declined.confidence == "" and declined.decline_reason == "out_of_domain"
    assert vn.ask("the 2025 budget by cost category").interpretation == \
        "Total budget for fiscal year 2025, by cost category"


def test_trained_questions_keep_their_sql_and_paraphrases_reuse_it(vn):
    trained = {e.question: e.sql for e in load_training(dialect="sqlite").examples}
    answer = vn.ask("spend per cost type")
    assert answer.sql == trained["What are the actual costs per cost category?"]
    assert answer.confidence == "high"


def test_answer_survives_asdict_round_trip(vn):
    answer = vn.ask("top 5 vendors by spend in 2024")
    assert SqlAnswer(**dataclasses.asdict(answer)) == answer
    assert answer.context["spec"]["top"]["n"] == 5


# ------------------------------------------------------------------------------- the lexicon follows the data
def test_the_lexicon_comes_from_the_data_and_is_refreshed(sample_db, tmp_path):
    db = tmp_path / "copy.sqlite3"
    shutil.copy(sample_db, db)
    source = SampleSQLiteSource(db)
    vn = build_assistant(Settings(sample_db_path=db), data_source=source)
    assert vn.ask("budget of the Quantum Lab department").declined
    with sqlite3.connect(db) as conn:  # a copy: the sample database itself stays as it is
        conn.execute("INSERT INTO departments VALUES (9, 'Quantum Lab', 'Technology', 'CC-900')")
        conn.execute("UPDATE projects SET department_id = 9 WHERE project_id = 1")
    conn.close()
    vn.answerer.engine.lexicon.invalidate()  # what the TTL does on its own
    answer = vn.ask("budget of the Quantum Lab department")
    assert not answer.declined and "'Quantum Lab'" in answer.sql
    expected = source.run_sql("SELECT SUM(budget_amount) FROM budget_lines WHERE project_id = 1").iat[0, 0]
    assert source.run_sql(answer.sql).iat[0, 0] == pytest.approx(expected)


# ------------------------------------------------------------------------------------- the Databricks data source
@pytest.fixture
def warehouse(fake_warehouse, monkeypatch: pytest.MonkeyPatch):
    """The fake warehouse with the sample tables, and the app configured to use it."""
    from ctg_app.settings import reload_settings

    from .conftest import serve_sample_from_warehouse

    serve_sample_from_warehouse(fake_warehouse, monkeypatch)
    reload_settings()
    yield fake_warehouse
    reload_settings()


def test_the_engine_reads_its_lexicon_from_the_warehouse_and_answers_in_its_dialect(warehouse, source):
    vn = build_assistant()
    assert vn.dialect == "Databricks SQL"
    lexicon, reads = vn.answerer.engine.lexicon, []
    real_run_sql = lexicon.run_sql
    lexicon.run_sql = lambda sql: reads.append(sql) or real_run_sql(sql)
    cases = {
        "actual costs for the Engineering department per quarter in 2024":
            "SELECT (CAST(strftime('%m', a.posting_date) AS INTEGER) + 2) / 3, SUM(a.amount) FROM actual_costs a "
            "JOIN projects p USING (project_id) JOIN departments d USING (department_id) "
            "WHERE d.department_name = 'Engineering' AND a.posting_date LIKE '2024-%' GROUP BY 1",
        "number of completed projects per PM":
            "SELECT project_manager, COUNT(*) FROM projects WHERE status = 'Completed' GROUP BY 1",
        "top 3 vendors by spend in 2024":
            "SELECT vendor, SUM(amount) s FROM actual_costs WHERE vendor <> 'Internal' AND posting_date LIKE '2024-%' "
            "GROUP BY 1 ORDER BY s DESC LIMIT 3",
    }
    for question, reference in cases.items():
        answer = vn.ask(question)
        assert not answer.declined, (question, answer.message)
        got = vn.run(answer.sql)
        assert rows(got) == rows(source.run_sql(reference)), question
    assert len(reads) == 1  # the whole lexicon in one round trip to the warehouse


def test_check_training_fails_for_a_trained_question_the_engine_cannot_read(sample_db, monkeypatch):
    import io

    from ctg_app.chatbot.data import training_check
    from ctg_app.chatbot.data.training import Example

    real = training_check.load_training

    def with_an_unreadable_example(dialect):
        data = real(dialect=dialect)
        odd = Example("Tell me a joke about projects", "SELECT COUNT(*) FROM projects")
        return type(data)(data.ddl, data.documentation, data.examples + (odd,))

    monkeypatch.setattr(training_check, "load_training", with_an_unreadable_example)
    results = training_check.check_training(settings=Settings(sample_db_path=sample_db))
    failed = [r for r in results if not r.ok]
    assert [r.question for r in failed] == ["Tell me a joke about projects"]
    assert "offline engine cannot read" in failed[0].error and "joke" in failed[0].error
