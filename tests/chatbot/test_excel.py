"""The Excel download as people expect it (issue 13): formats, header, widths, a second sheet, a useful file name."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pandas as pd

from ctg_app.chatbot.present.excel import excel_file_name, to_excel_bytes


def _workbook(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "project_name": ["Wind Farm 12", "A considerably longer project name for the width test"],
        "total_budget": [2862576.2, -1836735.46],
        "billable_share_pct": [55.0, 61.5],
        "total_hours": [1234.5, 80.0],
        "start_date": ["2024-01-15", "2025-03-01"],
        "fiscal_year": [2024, 2025],
    })


def test_header_formats_widths_filter_and_frozen_row():
    sheet = _workbook(to_excel_bytes(_frame())).active
    # the table's headers, not the query's column names (issue 21)
    assert [c.value for c in sheet[1]] == ["Project name", "Total budget", "Billable share (%)", "Total hours",
                                           "Start date", "Fiscal year"]
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:F3"
    formats = {sheet.cell(row=1, column=i).value: sheet.cell(row=2, column=i).number_format for i in range(1, 7)}
    assert formats["Total budget"] == '"€ "#,##0;"€ -"#,##0'
    assert formats["Billable share (%)"] == '0.0"%"'
    assert formats["Total hours"] == '#,##0.0 "h"'
    assert formats["Start date"] == "yyyy-mm-dd"
    assert formats["Fiscal year"] == "0"  # a year, not "2,024"
    assert sheet["E2"].value == dt.datetime(2024, 1, 15)  # a real date, not text
    assert sheet["B3"].value == -1836735.46  # the value is exact; only its format rounds
    widths = {c: sheet.column_dimensions[c].width for c in "ABF"}
    assert widths["A"] > 50 and widths["F"] < 20  # fitted to the content


def test_only_the_chosen_columns_and_the_about_sheet():
    about = {"Question": "What is the cost to go by project?", "Answered as": "Latest cost to go per project",
             "SQL": "SELECT 1", "Data source": "sample SQLite", "Created": "2026-12-01 09:00 UTC"}
    book = _workbook(to_excel_bytes(_frame(), ["total_budget", "project_name"], about=about))
    assert book.sheetnames == ["Results", "About"]
    assert [c.value for c in book["Results"][1]] == ["Total budget", "Project name"]
    rows = {r[0]: r[1] for r in book["About"].iter_rows(values_only=True)}
    assert rows["Question"] == "What is the cost to go by project?" and rows["SQL"] == "SELECT 1"
    # the query's own column names stay findable, for whoever reuses the SQL
    assert rows["Rows"] == "2" and rows["Columns"] == "Total budget (total_budget), Project name (project_name)"


def test_empty_result_and_control_characters_still_make_a_workbook():
    book = _workbook(to_excel_bytes(pd.DataFrame({"name": pd.Series([], dtype=object)})))
    assert [c.value for c in book.active[1]] == ["Name"]
    book = _workbook(to_excel_bytes(pd.DataFrame({"name": ["bell\x07 here"]})))
    assert book.active["A2"].value == "bell here"


def _month_cells(sheet, column: int) -> list[tuple[object, str]]:
    return [(c.value, c.number_format) for (c,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column)]


def test_months_read_as_names_and_sort_as_months():
    # "actual costs per month": the query returns 1..12, a controller reads Jan..Dec (as the chart and summary say)
    months = pd.DataFrame({"month": [1, 3, 10, 12], "total_actual_cost": [10.0, 30.0, 20.0, 5.0]})
    sheet = _workbook(to_excel_bytes(months)).active
    assert [c.value for c in sheet[1]] == ["Month", "Total actual cost"]
    cells = _month_cells(sheet, 1)
    assert {fmt for _, fmt in cells} == {"mmm"}  # Excel shows "Jan", "Mar", "Oct", "Dec"
    values = [v for v, _ in cells]
    assert all(isinstance(v, dt.datetime) for v in values)  # real dates: sorting and filtering go Jan..Dec
    assert [v.month for v in values] == [1, 3, 10, 12] and values == sorted(values)  # text would sort "Dec" < "Jan"


def test_months_of_several_years_are_dated_in_their_row_year():
    months = pd.DataFrame({"fiscal_year": [2023, 2024, 2024], "posting_month": [12, 1, 2], "hours": [1.0, 2.0, 3.0]})
    sheet = _workbook(to_excel_bytes(months)).active
    assert [c.value for c in sheet[1]] == ["Fiscal year", "Posting month", "Hours"]
    values = [v for v, _ in _month_cells(sheet, 2)]
    assert values == [dt.datetime(2023, 12, 1), dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)]
    # a column named month that holds other numbers is no month: it stays a number
    sheet = _workbook(to_excel_bytes(pd.DataFrame({"month": [40, 55]}))).active
    assert [v for v, _ in _month_cells(sheet, 1)] == [40, 55]


def test_file_name_from_question_and_date():
    assert excel_file_name("What is the cost to go by project?", dt.date(2026, 12, 1)) == \
        "ctg-cost-to-go-by-project-2026-12-01.xlsx"
    assert excel_file_name("   ", dt.date(2026, 12, 1)) == "ctg-results-2026-12-01.xlsx"
    long = excel_file_name("x" * 500 + " budget", dt.date(2026, 12, 1))
    assert len(long) < 90 and long.endswith("-2026-12-01.xlsx")
    assert "/" not in excel_file_name("../../etc/passwd?", dt.date(2026, 12, 1))
