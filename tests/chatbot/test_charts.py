"""Chart choice by data type, not by column name (issue 13)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ctg_app.chatbot.present.charts import MAX_BARS, build_chart, can_chart, period_label, plan_chart
from ctg_app.tracking import ChartError


def _projects(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "project_code": [f"P-{i:04d}" for i in range(n)],
        "actual_to_date": [1000.0 * ((i * 37) % n + 1) for i in range(n)],  # amounts, in no particular order
        "cost_to_go": [500.0 * (i % 7) for i in range(n)],
    })


def test_a_date_named_column_holding_numbers_is_never_a_time_axis():
    # the symptom: `actual_to_date` was taken for a time axis (substring "date") and drawn as a zig-zag line
    df = _projects(12)[["project_code", "actual_to_date"]]
    plan = plan_chart(df)
    assert plan.kind == "bar" and plan.x == "project_code"
    numbers_only = pd.DataFrame({"start_date": [3.0, 1.0, 2.0], "amount": [10.0, 20.0, 30.0]})
    assert plan_chart(numbers_only).kind == "scatter"  # two measures, no time axis


def test_real_dates_and_recognised_periods_make_a_time_axis():
    iso_text = pd.DataFrame({"forecast_date": ["2024-04-01", "2024-01-01", "2024-07-01"], "ctg": [3.0, 1.0, 2.0]})
    assert (plan_chart(iso_text).kind, plan_chart(iso_text).x) == ("line", "forecast_date")
    dates = pd.DataFrame({"day": [dt.date(2024, 1, 2), dt.date(2024, 1, 1)], "amount": [1.0, 2.0]})
    assert plan_chart(dates).kind == "line"
    months = pd.DataFrame({"month": list(range(1, 13)), "total_actual_cost": [float(i) for i in range(12)]})
    plan = plan_chart(months)
    assert (plan.kind, plan.x, plan.measures) == ("line", "month", ("total_actual_cost",))
    figure = build_chart(months)
    assert list(figure.data[0].x) == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                      "Dec"]
    assert figure.layout.xaxis.type == "category"
    # a "month" column whose values are not months is a measure, not a time axis
    not_months = pd.DataFrame({"label": ["a", "b"], "month": [40, 55]})
    assert plan_chart(not_months).kind == "bar" and plan_chart(not_months).measures == ("month",)


def test_period_labels():
    assert period_label("month", 3) == "Mar"
    assert period_label("fiscal_quarter", 2.0) == "Q2"
    assert period_label("year", 2024) == "2024"


def test_several_measures_are_grouped_bars_with_human_labels_and_a_title():
    df = pd.DataFrame({"project_code": ["A", "B"], "total_budget": [10.0, 20.0], "total_actual": [12.0, 18.0]})
    figure = build_chart(df, title="Budget and actual costs per project, compared side by side for every project")
    assert figure.layout.barmode == "group"
    assert [trace.name for trace in figure.data] == ["Total budget", "Total actual"]  # both measures, not the first
    assert figure.layout.xaxis.title.text == "Project code"
    assert figure.layout.yaxis.title.text == "Amount (€)"
    assert figure.layout.title.text.startswith("Budget and actual costs")
    assert "<br>" in figure.layout.title.text  # long titles wrap (Plotly does not)


def test_only_the_top_rows_are_plotted_and_the_plan_says_so():
    df = _projects(120)
    plan = plan_chart(df)
    assert (plan.rows_plotted, plan.rows_total) == (MAX_BARS, 120)
    assert plan.note == ("The chart shows the top 30 of 120 rows by actual to date; the table and the download "
                         "have them all.")
    figure = build_chart(df)
    assert len(figure.data[0].x) == MAX_BARS
    assert min(figure.data[0].y) >= df["actual_to_date"].nlargest(MAX_BARS).min()
    assert plan_chart(_projects(12)).note == ""


def test_nothing_to_chart():
    assert not can_chart(pd.DataFrame())
    assert not can_chart(pd.DataFrame({"project_name": ["a"], "project_id": [1]}))  # ids are not measures
    with pytest.raises(ChartError):
        plan_chart(pd.DataFrame({"project_name": ["a", "b"]}))
    single = build_chart(pd.DataFrame({"total_budget": [1234.0]}))
    assert single.data[0].type == "indicator"
