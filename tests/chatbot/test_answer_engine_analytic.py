"""The analytic shapes of the offline engine (issue 19) and the answers that used to mislead.

Each answer is checked by running the engine's SQL and an independently written reference on the real sample
database (and, for two shapes, on the fake warehouse through the real connector, since Databricks SQL is another
dialect). The interpretation ("Answered as") must name every choice the engine made.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pandas as pd
import pytest

from ctg_app.chatbot.assistant import build_assistant
from ctg_app.chatbot.answering.engine import AnswerEngine, resolve_anchor
from ctg_app.chatbot.data.source import SampleSQLiteSource
from ctg_app.settings import Settings, SettingsError
from fake_databricks import FakeWarehouse
from tests.chatbot.conftest import sample_and_usage_warehouse


@pytest.fixture(scope="module")
def source(sample_db):
    return SampleSQLiteSource(sample_db)


@pytest.fixture(scope="module")
def engine(source) -> AnswerEngine:
    return AnswerEngine(source.run_sql, dialect="sqlite", date_anchor="latest-data")


def rows(df: pd.DataFrame) -> list[tuple]:
    return sorted(tuple(round(v, 2) if isinstance(v, float) else v for v in r) for r in df.itertuples(index=False))


def answered(engine: AnswerEngine, source, question: str) -> tuple[object, pd.DataFrame]:
    answer = engine.answer(question)
    assert not answer.declined, (question, answer.message)
    return answer, source.run_sql(answer.sql)


# ------------------------------------------------------------------------------------------ the misleading answers
def test_a_total_across_all_projects_is_one_number(engine, source):
    answer, got = answered(engine, source, "What is our total budget across all projects?")
    assert got.shape == (1, 1)  # was a 120-row table, one row per project
    assert got.iat[0, 0] == pytest.approx(source.run_sql("SELECT SUM(budget_amount) FROM budget_lines").iat[0, 0])
    assert "all projects" in answer.interpretation


def test_a_period_without_data_says_so_instead_of_a_null_total(engine):
    answer = engine.answer("spend in 2022")
    assert answer.declined and answer.sql is None  # was SUM over no rows: one NULL
    assert answer.decline_reason == "no_data"
    assert "2022" in answer.message and "2023-01" in answer.message and "2025-06" in answer.message
    assert answer.alternatives and all(not engine.answer(a).declined for a in answer.alternatives)


def test_a_total_over_no_rows_is_no_rows_not_a_null_number(engine, source):
    answer, got = answered(engine, source, "actual costs of project P-2024-0004")  # a planned project, no postings
    assert source.run_sql("SELECT COUNT(*) FROM actual_costs a JOIN projects p USING (project_id) "
                          "WHERE p.project_code = 'P-2024-0004'").iat[0, 0] == 0
    assert len(got) == 0  # was one row holding NULL
    assert "project P-2024-0004" in answer.interpretation


def test_a_decline_names_measures_in_words_not_internal_ids(engine):
    answer = engine.answer("contract value and hours per project")
    assert answer.declined
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", answer.message), answer.message  # was "(contract_value, hours)"
    assert "contract value" in answer.message


def test_top_ten_vendors_says_the_internal_vendor_is_left_out(engine, source):
    answer, got = answered(engine, source, "top ten vendors")
    external = source.run_sql("SELECT COUNT(DISTINCT vendor) FROM actual_costs WHERE vendor <> 'Internal'").iat[0, 0]
    assert external >= 9 and len(got) == min(10, external)  # 9 external vendors, 10 with the apostrophe vendor
    assert "Internal" not in got.iloc[:, 0].tolist()
    assert "“Internal”" in answer.interpretation  # was silent about the tenth vendor


def test_top_projects_by_margin_rank_only_projects_with_actual_costs(engine, source):
    answer, got = answered(engine, source, "top 5 projects by margin")
    without = set(source.run_sql("SELECT project_code FROM projects WHERE project_id NOT IN "
                                 "(SELECT project_id FROM actual_costs)").iloc[:, 0])
    assert without and not (set(got.iloc[:, 0]) & without)  # planned projects with no actuals ranked first before
    reference = source.run_sql(
        "SELECT p.project_code FROM projects p JOIN (SELECT project_id, SUM(amount) s FROM actual_costs GROUP BY 1) a "
        "ON a.project_id = p.project_id ORDER BY p.contract_value - a.s DESC, p.project_code LIMIT 5")
    assert got.iloc[:, 0].tolist() == reference.iloc[:, 0].tolist()
    assert "only projects with actual costs" in answer.interpretation


# --------------------------------------------------------------------------------------------------- the shapes
@pytest.mark.parametrize(("question", "reference"), [
    ("actual costs by department, not Engineering",
     "SELECT d.department_name, SUM(a.amount) FROM actual_costs a JOIN projects p USING (project_id) "
     "JOIN departments d USING (department_id) WHERE d.department_name <> 'Engineering' GROUP BY 1"),
    ("number of projects excluding On Hold",
     "SELECT COUNT(*) FROM projects WHERE status <> 'On Hold'"),
    ("customers with more than 3 projects",
     "SELECT c.customer_name, COUNT(*) FROM projects p JOIN customers c USING (customer_id) GROUP BY 1 "
     "HAVING COUNT(*) > 3"),
    ("maximum contract value per department",
     "SELECT d.department_name, MAX(p.contract_value) FROM projects p JOIN departments d USING (department_id) "
     "GROUP BY 1"),
    ("average hours per project by role",
     "SELECT role, ROUND(SUM(hours) / COUNT(DISTINCT project_id), 2) FROM hours GROUP BY 1"),
    ("contract value for Alpen", None),  # three customers start with "Alpen": declined, not guessed
    ("top 2 projects per customer industry by hours",  # per-group top-N
     "WITH t AS (SELECT c.industry k, p.project_code v, SUM(h.hours) s FROM hours h JOIN projects p USING (project_id) "
     "JOIN customers c USING (customer_id) GROUP BY 1, 2), r AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY k "
     "ORDER BY s DESC, v) n FROM t) SELECT k, v, s FROM r WHERE n <= 2"),
    ("costs per project for the top 5 customers", None),  # a project does not nest in a customer ranking: declined
    ("percentage of on hold projects",
     "SELECT ROUND(100.0 * SUM(CASE WHEN status = 'On Hold' THEN 1 ELSE 0 END) / COUNT(*), 1) FROM projects"),
    ("share of budget by business unit",
     "SELECT d.business_unit, ROUND(100.0 * SUM(b.budget_amount) / (SELECT SUM(budget_amount) FROM budget_lines), 1) "
     "FROM budget_lines b JOIN projects p USING (project_id) JOIN departments d USING (department_id) GROUP BY 1"),
    ("percentage of projects over budget by business unit",
     "SELECT d.business_unit, ROUND(100.0 * SUM(CASE WHEN COALESCE(a.s, 0) > COALESCE(b.s, 0) THEN 1 ELSE 0 END) "
     "/ COUNT(*), 1) FROM projects p JOIN departments d USING (department_id) "
     "LEFT JOIN (SELECT project_id, SUM(amount) s FROM actual_costs GROUP BY 1) a USING (project_id) "
     "LEFT JOIN (SELECT project_id, SUM(budget_amount) s FROM budget_lines GROUP BY 1) b USING (project_id) GROUP BY 1"),
    ("budget vs actual per cost category for FY2024",  # both sides booked per category: stacked, not joined
     "SELECT c, SUM(b), SUM(a) FROM (SELECT cost_category c, budget_amount b, 0 a FROM budget_lines "
     "WHERE fiscal_year = 2024 UNION ALL SELECT cost_category, 0, amount FROM actual_costs "
     "WHERE posting_date >= '2024-01-01' AND posting_date < '2025-01-01') GROUP BY 1"),
    ("plan versus actual costs per business unit",  # the pair's phrase followed by "costs" is still the pair
     "SELECT d.business_unit, SUM(COALESCE(b.s, 0)), SUM(COALESCE(a.s, 0)) FROM projects p "
     "JOIN departments d USING (department_id) "
     "LEFT JOIN (SELECT project_id, SUM(budget_amount) s FROM budget_lines GROUP BY 1) b USING (project_id) "
     "LEFT JOIN (SELECT project_id, SUM(amount) s FROM actual_costs GROUP BY 1) a USING (project_id) GROUP BY 1"),
    ("actual costs excluding Engineering and Consulting",  # a list of left-out values: all of them left out
     "SELECT SUM(a.amount) FROM actual_costs a JOIN projects p USING (project_id) JOIN departments d "
     "USING (department_id) WHERE d.department_name NOT IN ('Engineering', 'Consulting')"),
    ("hours excluding Consultants for Engineering",  # a value of another dimension after it is a filter
     "SELECT SUM(h.hours) FROM hours h JOIN projects p USING (project_id) JOIN departments d USING (department_id) "
     "WHERE h.role <> 'Consultant' AND d.department_name = 'Engineering'"),
    ("contract value between 1 and 2 million per project",  # the scale said once holds for both numbers
     "SELECT project_code, contract_value FROM projects WHERE contract_value BETWEEN 1000000 AND 2000000"),
    ("share of hours", None),  # a share of the total needs a breakdown; no silent billable share any more
    ("spend in Q2/25", "SELECT SUM(amount) FROM actual_costs WHERE posting_date >= '2025-04-01' "
                       "AND posting_date < '2025-07-01'"),
    ("hours since February 2025", "SELECT SUM(hours) FROM hours WHERE work_date >= '2025-02-01'"),
    ("hours 2024 versus 2023",
     "SELECT SUM(CASE WHEN work_date < '2024-01-01' THEN hours END), SUM(CASE WHEN work_date >= '2024-01-01' "
     "THEN hours END) FROM hours WHERE work_date >= '2023-01-01' AND work_date < '2025-01-01'"),
])
def test_analytic_shapes_answer_with_the_reference_rows(engine, source, question, reference):
    answer = engine.answer(question)
    if reference is None:
        assert answer.declined
        return
    assert not answer.declined, answer.message
    got, want = source.run_sql(answer.sql), source.run_sql(reference)
    assert len(got) == len(want)
    for col in range(want.shape[1]):  # every reference column is among the answer's columns
        target = sorted(round(v, 2) for v in want.iloc[:, col] if isinstance(v, float)) or sorted(want.iloc[:, col])
        assert any(sorted(round(v, 2) for v in got.iloc[:, c] if isinstance(v, float)) == target
                   or sorted(got.iloc[:, c].tolist()) == target for c in range(got.shape[1])), (question, col)


def test_a_ranking_within_groups_and_a_share_say_what_they_are(engine):
    top = engine.answer("top project per department by actual costs")
    assert "the project with the highest value in each department" in top.interpretation
    share = engine.answer("share of spend per vendor")
    assert "share of the total" in share.interpretation and "“Internal”" in share.interpretation


def test_an_exclusion_is_named_in_the_interpretation(engine):
    answer = engine.answer("how many projects are not completed?")
    assert "excluding status Completed" in answer.interpretation and "<> 'Completed'" in answer.sql


def test_a_value_prefix_is_stated_and_an_ambiguous_one_declined(engine):
    answer = engine.answer("actual costs for Digital")
    assert "'Digital Services'" in answer.sql and "“digital” read as department Digital Services" in answer.interpretation
    alpen = engine.answer("contract value for Alpen")
    assert alpen.declined and alpen.decline_reason == "ambiguous" and "Alpen Bank" in alpen.message


def test_an_explanatory_clause_is_read_not_a_reason_to_decline(engine, source):
    answer, got = answered(engine, source, "how many projects are over budget, i.e. actual costs above budget?")
    reference = source.run_sql(
        "SELECT COUNT(*) FROM projects p LEFT JOIN (SELECT project_id, SUM(amount) s FROM actual_costs GROUP BY 1) a "
        "USING (project_id) LEFT JOIN (SELECT project_id, SUM(budget_amount) s FROM budget_lines GROUP BY 1) b "
        "USING (project_id) WHERE COALESCE(a.s, 0) > COALESCE(b.s, 0)")
    assert got.iat[0, 0] == reference.iat[0, 0]
    # an explanation that says something else still counts: two different measures cannot both be honoured
    assert engine.answer("total budget, i.e. the hours booked").declined


# ------------------------------------------------------------------------------------------------ relative dates
def test_relative_dates_count_from_the_anchor_the_answer_states(source):
    latest = AnswerEngine(source.run_sql, date_anchor="latest-data").answer("actual costs last year")
    assert "2024" in latest.interpretation and "relative to the latest data, 2025-06-30" in latest.interpretation
    assert "posting_date >= '2024-01-01'" in latest.sql.replace("DATE(", "").replace("')", "'")
    fixed = AnswerEngine(source.run_sql, date_anchor="2024-05-15").answer("hours this quarter")
    assert "relative to the set date 2024-05-15" in fixed.interpretation
    got = source.run_sql(fixed.sql).iat[0, 0]
    want = source.run_sql("SELECT SUM(hours) FROM hours WHERE work_date >= '2024-04-01' AND work_date < '2024-07-01'")
    assert got == pytest.approx(want.iat[0, 0])
    ytd = AnswerEngine(source.run_sql, date_anchor="2025-03-31").answer("YTD spend")
    want = source.run_sql("SELECT SUM(amount) FROM actual_costs WHERE posting_date BETWEEN '2025-01-01' AND '2025-03-31'")
    assert source.run_sql(ytd.sql).iat[0, 0] == pytest.approx(want.iat[0, 0])


def test_the_anchor_setting_resolves_and_is_validated():
    assert Settings().date_anchor == "latest-data"
    with pytest.raises(SettingsError):
        Settings(date_anchor="yesterday-ish")
    today = dt.date(2026, 12, 3)
    assert resolve_anchor("today", "2025-06-30", today) == (today, "relative to today, 2026-12-03")
    assert resolve_anchor("latest-data", None, today)[0] == today  # no data read: today, and the answer says so
    assert resolve_anchor("latest-data", "2025-06-30", today)[0] == dt.date(2025, 6, 30)


# ----------------------------------------------------------------- Databricks SQL: the fake warehouse, real connector
@pytest.fixture(scope="module")
def warehouse() -> Iterator[FakeWarehouse]:
    yield from sample_and_usage_warehouse()


@pytest.fixture(scope="module")
def warehouse_vn(warehouse: FakeWarehouse):
    env = {**warehouse.env(), "CTG_DATA_SOURCE": "databricks", "CTG_DATA_SCHEMA": "ctg.project_controlling",
           "WAREHOUSE_TIMEOUT_S": "5", "CTG_DATE_ANCHOR": "latest-data"}
    return build_assistant(Settings.from_sources(env), cache_key="warehouse-analytic")


@pytest.mark.parametrize(("question", "reference"), [
    ("actual costs 2025 vs 2024 by department",  # two windows: CASE sums, change and % change
     "SELECT d.department_name, SUM(CASE WHEN a.posting_date < '2025-01-01' THEN a.amount ELSE 0 END), "
     "SUM(CASE WHEN a.posting_date >= '2025-01-01' THEN a.amount ELSE 0 END), "
     "ROUND(100.0 * (SUM(CASE WHEN a.posting_date >= '2025-01-01' THEN a.amount ELSE 0 END) - "
     "SUM(CASE WHEN a.posting_date < '2025-01-01' THEN a.amount ELSE 0 END)) / "
     "SUM(CASE WHEN a.posting_date < '2025-01-01' THEN a.amount ELSE 0 END), 1) "
     "FROM actual_costs a JOIN projects p USING (project_id) JOIN departments d USING (department_id) "
     "WHERE a.posting_date >= '2024-01-01' AND a.posting_date < '2026-01-01' GROUP BY 1"),
    ("YTD actual costs by department, not Engineering",  # relative date + negation, anchor read from the warehouse
     "SELECT d.department_name, SUM(a.amount) FROM actual_costs a JOIN projects p USING (project_id) "
     "JOIN departments d USING (department_id) WHERE d.department_name <> 'Engineering' "
     "AND a.posting_date >= '2025-01-01' GROUP BY 1"),
    ("departments with more than 15 projects",
     "SELECT d.department_name, COUNT(*) FROM projects p JOIN departments d USING (department_id) GROUP BY 1 "
     "HAVING COUNT(*) > 15"),
    ("spend in Q2/25", "SELECT SUM(amount) FROM actual_costs WHERE posting_date >= '2025-04-01' "
                       "AND posting_date < '2025-07-01'"),  # a total: the NULL guard runs on Databricks SQL too
    ("top project per department by actual costs",  # ROW_NUMBER() OVER (PARTITION BY …) on Databricks SQL
     "WITH t AS (SELECT d.department_name k, p.project_code v, SUM(a.amount) s FROM actual_costs a "
     "JOIN projects p USING (project_id) JOIN departments d USING (department_id) GROUP BY 1, 2), "
     "r AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY s DESC, v) n FROM t) SELECT k, v, s FROM r WHERE n = 1"),
    ("share of actual costs per cost category",  # SUM(SUM(x)) OVER ()
     "SELECT cost_category, ROUND(100.0 * SUM(amount) / (SELECT SUM(amount) FROM actual_costs), 1) FROM actual_costs "
     "GROUP BY 1"),
])
def test_composed_sql_runs_on_the_warehouse_dialect(warehouse_vn, source, question, reference):
    answer = warehouse_vn.ask(question)
    assert not answer.declined, answer.message
    got, want = warehouse_vn.run(answer.sql), source.run_sql(reference)
    assert len(got) == len(want)
    for col in range(want.shape[1]):
        target = sorted(round(float(v), 1) if not isinstance(v, str) else v for v in want.iloc[:, col])
        assert any(sorted(round(float(v), 1) if not isinstance(v, str) else v for v in got.iloc[:, c]) == target
                   for c in range(got.shape[1])), (question, col, answer.sql)


# ------------------------------------------------------------------------------------------------- the LLM path
def test_the_llm_prompt_carries_the_same_interpretation_contract_and_the_anchor():
    from ctg_app.chatbot.answer.llm_reply import REPLY_FORMAT, anchor_rule

    assert "every value left out" in REPLY_FORMAT and "default assumed" in REPLY_FORMAT
    assert "latest posting_date" in anchor_rule(Settings(date_anchor="latest-data"))
    assert "2025-03-31" in anchor_rule(Settings(date_anchor="2025-03-31"))
    assert "2026-12-03" in anchor_rule(Settings(date_anchor="today"), today=dt.date(2026, 12, 3))


def test_a_follow_up_can_leave_a_value_out_and_the_answer_says_what_it_kept(engine, source):
    first = engine.answer("actual costs per department in 2024")
    second = engine.answer("and without Engineering?", first)
    assert not second.declined and "<> 'Engineering'" in second.sql and "2024-01-01" in second.sql
    assert "excluding department Engineering" in second.interpretation
    assert "previous question" in second.interpretation
    got = source.run_sql(second.sql)
    assert "Engineering" not in got.iloc[:, 0].tolist() and len(got) == 7


def test_a_corrected_typo_is_named_in_the_interpretation(engine):
    answer = engine.answer("total budgte per department")
    assert not answer.declined and "read “budgte” as “budget”" in answer.interpretation


def test_a_period_that_reaches_past_the_data_says_where_the_data_ends(engine):
    answer = engine.answer("this year vs last year actual costs")
    assert "2025 holds actual costs only up to 2025-06-30" in answer.interpretation
    assert "“last year” = 2024" in answer.interpretation and "“this year” = 2025" in answer.interpretation


def test_a_number_of_things_that_are_not_projects_is_not_compared_with_an_amount(engine):
    answer = engine.answer("vendors with more than 100 invoices")  # was: actual costs above 100 EUR per vendor
    assert answer.declined and "a number of invoices" in answer.message
