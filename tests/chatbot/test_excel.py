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
    assert [c.value for c in sheet[1]] == list(_frame().columns)
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:F3"
    formats = {sheet.cell(row=1, column=i).value: sheet.cell(row=2, column=i).number_format for i in range(1, 7)}
    assert formats["total_budget"] == '"€ "#,##0;"€ -"#,##0'
    assert formats["billable_share_pct"] == '0.0"%"'
    assert formats["total_hours"] == '#,##0.0 "h"'
    assert formats["start_date"] == "yyyy-mm-dd"
    assert formats["fiscal_year"] == "0"  # a year, not "2,024"
    assert sheet["E2"].value == dt.datetime(2024, 1, 15)  # a real date, not text
    assert sheet["B3"].value == -1836735.46  # the value is exact; only its format rounds
    widths = {c: sheet.column_dimensions[c].width for c in "ABF"}
    assert widths["A"] > 50 and widths["F"] < 20  # fitted to the content


def test_only_the_chosen_columns_and_the_about_sheet():
    about = {"Question": "What is the cost to go by project?", "Answered as": "Latest cost to go per project",
             "SQL": "SELECT 1", "Data source": "sample SQLite", "Created": "2026-12-01 09:00 UTC"}
    book = _workbook(to_excel_bytes(_frame(), ["total_budget", "project_name"], about=about))
    assert book.sheetnames == ["Results", "About"]
    assert [c.value for c in book["Results"][1]] == ["total_budget", "project_name"]
    rows = {r[0]: r[1] for r in book["About"].iter_rows(values_only=True)}
    assert rows["Question"] == "What is the cost to go by project?" and rows["SQL"] == "SELECT 1"
    assert rows["Rows"] == "2" and rows["Columns"] == "total_budget, project_name"


def test_empty_result_and_control_characters_still_make_a_workbook():
    book = _workbook(to_excel_bytes(pd.DataFrame({"name": pd.Series([], dtype=object)})))
    assert [c.value for c in book.active[1]] == ["name"]
    book = _workbook(to_excel_bytes(pd.DataFrame({"name": ["bell\x07 here"]})))
    assert book.active["A2"].value == "bell here"


def test_file_name_from_question_and_date():
    assert excel_file_name("What is the cost to go by project?", dt.date(2026, 12, 1)) == \
        "ctg-cost-to-go-by-project-2026-12-01.xlsx"
    assert excel_file_name("   ", dt.date(2026, 12, 1)) == "ctg-results-2026-12-01.xlsx"
    long = excel_file_name("x" * 500 + " budget", dt.date(2026, 12, 1))
    assert len(long) < 90 and long.endswith("-2026-12-01.xlsx")
    assert "/" not in excel_file_name("../../etc/passwd?", dt.date(2026, 12, 1))
