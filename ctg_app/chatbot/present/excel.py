"""The Excel download as people expect it (openpyxl): a bold, frozen header with an autofilter, the table's own column
labels ("Total actual cost", not ``total_actual_cost``), column widths fitted to the content, number formats matching
the table (currency, percent, hours, dates, month names), and a second sheet saying what the data is (question,
interpretation, SQL, data source, time, and which query column each header is). The file name comes from the question
and the date.

Months are real dates (the first of the month) formatted ``mmm``: they read "Mar" as in the table and chart, and still
sort and filter Jan..Dec, which month-name text would not (it sorts "Apr, Aug, Dec, …").
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Mapping, Sequence

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from ctg_app.chatbot.present import formatting as fmt

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_WIDTH = 60
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # control characters openpyxl refuses to write


def excel_file_name(question: str | None, when: dt.date | None = None, max_words: int = 8) -> str:
    """``ctg-cost-to-go-by-project-2026-12-01.xlsx``: a slug of the question (bounded) and the date."""
    when = when or dt.date.today()
    words = re.findall(r"[a-z0-9]+", (question or "").lower())
    skip = {"what", "is", "are", "the", "a", "an", "of", "show", "me", "please", "list", "which", "were", "was", "do",
            "does", "how", "many", "much", "there", "we", "have", "in", "for"}
    kept = [w for w in words if w not in skip][:max_words] or ["results"]
    slug = "-".join(kept)[:60].strip("-")
    return f"ctg-{slug}-{when.isoformat()}.xlsx"


def _cell_value(value: object, kind: str) -> object:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if kind == fmt.DATE:
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            return str(value)
        return stamp.to_pydatetime().replace(tzinfo=None) if (stamp.hour or stamp.minute or stamp.second) \
            else stamp.date()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar → Python
    if isinstance(value, str):
        return _ILLEGAL.sub("", value)
    return value


def _shown_length(value: object, kind: str) -> int:
    if value is None:
        return 0
    return len(fmt.format_value(value, kind)) if kind not in (fmt.TEXT,) else len(str(value))


def to_excel_bytes(df: pd.DataFrame, columns: Sequence[str] | None = None, sheet_name: str = "Results",
                   about: Mapping[str, object] | None = None) -> bytes:
    """``df`` (only ``columns``, in that order, when given) as a formatted .xlsx workbook.

    Headers are the table's labels (:func:`formatting.human_label`); ``about`` (question, interpretation, SQL, data
    source, …) becomes a second sheet "About" when given, which also names each header's query column
    ("Total actual cost (total_actual_cost)"), for whoever reuses the SQL.
    """
    if columns is not None:
        df = df.loc[:, list(columns)]
    kinds = fmt.column_kinds(df)
    names = [str(c) for c in df.columns]
    months = {name for name in names if fmt.is_month(name, kinds[name])}
    cells = df.copy()
    for name in months:
        cells[name] = fmt.month_dates(df, name).dt.date
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_name
    labels = [fmt.human_label(name) for name in names]  # the table's headers
    sheet.append(labels)
    for row in cells.itertuples(index=False, name=None):
        sheet.append([_cell_value(v, fmt.DATE if c in months else kinds[c]) for v, c in zip(row, names)])
    for index, (name, label) in enumerate(zip(names, labels), start=1):
        letter = get_column_letter(index)
        header = sheet.cell(row=1, column=index)
        header.font = Font(bold=True)
        header.fill = _HEADER_FILL
        header.alignment = Alignment(vertical="center")
        number_format = fmt.MONTH_EXCEL_FORMAT if name in months else fmt.excel_format(kinds[name], df[name])
        if number_format:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = number_format
        longest = max([len(label), *(_shown_length(v, kinds[name]) for v in df[name].head(2000))])
        sheet.column_dimensions[letter].width = min(MAX_WIDTH, longest + 3)
    if names:
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(names))}{max(1, len(df) + 1)}"
    if about is not None:
        _about_sheet(workbook, about, len(df), [f"{label} ({name})" if label != name else name
                                                for name, label in zip(names, labels)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _about_sheet(workbook: Workbook, about: Mapping[str, object], rows: int, columns: list[str]) -> None:
    sheet = workbook.create_sheet("About")
    items = [*about.items(), ("Rows", rows), ("Columns", ", ".join(columns))]
    for key, value in items:
        text = "" if value is None else _ILLEGAL.sub("", str(value))
        sheet.append([str(key), text])
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 100
    for (key_cell, value_cell) in sheet.iter_rows(min_row=1, max_col=2):
        key_cell.font = Font(bold=True)
        key_cell.alignment = Alignment(vertical="top")
        value_cell.alignment = Alignment(wrap_text=True, vertical="top")
