"""Numbers that read well, and summaries of the WHOLE result (issue 13)."""

from __future__ import annotations

import pandas as pd

from ctg_app.chatbot.present import formatting as fmt
from ctg_app.chatbot.present.summary import aggregates_text, summarize_frame
from ctg_app.chatbot.answer.vanna_app import LlmAnswerer
from ctg_app.settings import Settings
from ctg_app.ui.table import column_config


def test_kinds_come_from_name_and_values():
    df = pd.DataFrame({"actual_to_date": [1.5], "start_date": ["2024-01-01"], "customer_count": [3],
                       "billable_share_pct": [55.0], "total_hours": [12.5], "fiscal_year": [2024], "month": [3],
                       "project_id": [7], "project_name": ["x"], "avg_duration_days": [120.0]})
    assert fmt.column_kinds(df) == {
        "actual_to_date": fmt.CURRENCY, "start_date": fmt.DATE, "customer_count": fmt.COUNT,
        "billable_share_pct": fmt.PERCENT, "total_hours": fmt.HOURS, "fiscal_year": fmt.YEAR, "month": fmt.PERIOD,
        "project_id": fmt.IDENTIFIER, "project_name": fmt.TEXT, "avg_duration_days": fmt.DAYS}
    assert fmt.column_kind("month", pd.Series([40, 55])) != fmt.PERIOD  # not months by value


def test_values_are_formatted_by_meaning():
    assert fmt.format_value(2862576.2, fmt.CURRENCY) == "€\u00a02,862,576"  # no-break space: never split
    assert fmt.format_value(-1836735.46, fmt.CURRENCY) == "€\u00a0-1,836,735"
    assert fmt.format_value(55.0, fmt.PERCENT) == "55.0%"
    assert fmt.format_value(0.55, fmt.PERCENT, pd.Series([0.55, 0.2])) == "55.0%"  # fractions scaled
    assert fmt.format_value(1234.5, fmt.HOURS) == "1,234.5\u00a0h"
    assert fmt.format_value(2024, fmt.YEAR) == "2024"
    assert fmt.format_value(1234567, fmt.COUNT) == "1,234,567"
    assert fmt.format_value(None, fmt.CURRENCY) == "–"
    assert fmt.format_value("2024-01-15", fmt.DATE) == "2024-01-15"


def test_labels_plurals_and_sql():
    assert fmt.human_label("customer_count") == "Customer count"
    assert fmt.human_label("billable_share_pct") == "Billable share (%)"
    assert fmt.human_label("project_id") == "Project ID"
    assert fmt.plural(1, "row") == "1 row" and fmt.plural(2, "row") == "2 rows" and fmt.plural(0, "row") == "0 rows"
    pretty = fmt.pretty_sql("SELECT country, COUNT(*) AS n FROM customers GROUP BY country ORDER BY n DESC", "sqlite")
    assert pretty.splitlines()[0] == "SELECT" and "GROUP BY country" in pretty and len(pretty.splitlines()) > 4
    assert fmt.pretty_sql("not sql at all ((", "sqlite") == "not sql at all (("


def test_column_config_formats_numbers_and_labels():
    config = column_config(pd.DataFrame({"total_budget": [1.0], "project_name": ["a"], "start_date": ["2024-01-01"]}))
    assert config["total_budget"]["label"] == "Total budget"
    assert config["total_budget"]["type_config"]["format"] == "€ %,.0f"
    assert config["project_name"]["label"] == "Project name"
    assert config["start_date"]["type_config"]["format"] == "YYYY-MM-DD"
    shown = fmt.display_frame(pd.DataFrame({"start_date": ["2024-01-01"]}))
    assert pd.api.types.is_datetime64_any_dtype(shown["start_date"])


def test_months_show_as_names_in_the_table_and_sort_as_months():
    df = pd.DataFrame({"month": [12, 1, 3], "total_actual_cost": [5.0, 10.0, 30.0]})
    config = column_config(df)
    assert config["month"]["label"] == "Month"
    assert config["month"]["type_config"]["format"] == "MMM"  # "Dec", "Jan", "Mar"
    shown = fmt.display_frame(df)
    assert pd.api.types.is_datetime64_any_dtype(shown["month"])
    assert list(shown["month"].dt.month) == [12, 1, 3]
    assert list(shown.sort_values("month")["month"].dt.month) == [1, 3, 12]  # a click on the header sorts Jan..Dec
    assert df["month"].tolist() == [12, 1, 3]  # the result itself (download, chart, summary) is untouched
    with_year = fmt.display_frame(pd.DataFrame({"year": [2023, 2024], "month": [12, 1], "hours": [1.0, 2.0]}))
    assert list(with_year["month"]) == [pd.Timestamp(2023, 12, 1), pd.Timestamp(2024, 1, 1)]  # sorts across years
    assert fmt.display_frame(pd.DataFrame({"month": [40]}))["month"].tolist() == [40]  # not a month: unchanged


def _big_result(n: int = 120) -> pd.DataFrame:
    return pd.DataFrame({"project_code": [f"P-{i:04d}" for i in range(n)],
                         "total_budget": [1000.0 + i for i in range(n)],
                         "margin": [-50.0 if i % 10 == 0 else 100.0 for i in range(n)]})


def test_summary_covers_every_row_not_the_first_100():
    # the symptom: a 120-row result said "The query returned 100 rows" with totals of those 100 only
    df = _big_result(120)
    text = summarize_frame(df, "Compare budget per project")
    total = fmt.format_value(df["total_budget"].sum(), fmt.CURRENCY)
    assert "**120 rows**" in text
    assert total in text and fmt.format_value(df["total_budget"].head(100).sum(), fmt.CURRENCY) not in text
    assert "**P-0119**" in text  # the top item is row 120, beyond the first 100
    assert "12 rows of 120 have a negative margin" in text


def test_summary_sentences_for_small_results():
    assert summarize_frame(pd.DataFrame({"project_count": [120]})) == "Project count: **120**."
    assert summarize_frame(pd.DataFrame()) == "No rows match this question."
    months = pd.DataFrame({"month": [1, 2, 3], "total_actual_cost": [10.0, 30.0, 20.0]})
    text = summarize_frame(months)
    assert "From Jan to Mar" in text and "in Feb" in text  # month names, as on the chart's axis
    snapshots = pd.DataFrame({"forecast_date": ["2024-01-01", "2024-04-01"], "total_cost_to_go": [5.0, 4.0]})
    assert "Total" not in summarize_frame(snapshots)  # snapshots of cost to go do not add up over time


def test_llm_summary_sees_aggregates_of_the_whole_result():
    class FakeLlmVanna:
        prompts: list = []

        def system_message(self, message):
            return {"role": "system", "content": message}

        def user_message(self, message):
            return {"role": "user", "content": message}

        def submit_prompt(self, prompt, **kwargs):
            self.prompts.append(prompt)
            return "LLM summary"

    vn = FakeLlmVanna()
    df = _big_result(120)
    assert LlmAnswerer(vn, source=None, settings=Settings()).summarize("Budget per project?", df, interpretation="Total budget per project") == "LLM summary"
    sent = vn.prompts[-1][-1]["content"]
    assert "Rows: 120." in sent and "P-0119" in sent and "Total budget per project" in sent
    assert fmt.format_value(df["total_budget"].sum(), fmt.CURRENCY) in sent
    assert "P-0050" not in sent  # aggregates, not a dump of rows
    assert aggregates_text(df).startswith("Rows: 120.")


def test_the_app_shows_a_monthly_answer_with_month_names(chatbot_env):
    # the real app on the offline default: the trained "per month" question's table carries dates shown as "MMM"
    import json

    from streamlit.testing.v1 import AppTest

    from .conftest import APP_PATH

    at = AppTest.from_file(str(APP_PATH), default_timeout=30).run()
    at.chat_input[0].set_value("What were the actual costs per month in 2024?").run()
    table = at.dataframe[0]
    assert list(table.value["month"].dt.strftime("%b")) == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                                           "Sep", "Oct", "Nov", "Dec"][:len(table.value)]
    columns = json.loads(table.proto.columns)
    assert columns["month"]["type_config"]["format"] == "MMM" and columns["month"]["label"] == "Month"
