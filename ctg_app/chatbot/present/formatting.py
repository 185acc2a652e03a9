"""How result values read: the meaning of a column (currency, percent, hours, …), its human label, number formats
for the table (:func:`table_format`), for sentences and for Excel, plural-safe counts and pretty-printed SQL.

The meaning is decided from the column name *and* its values: a name only suggests a kind, the dtype must agree
(``start_date`` holding numbers is a number, never a date). Every display of a value — table, metric, summary,
Excel — goes through the same kind so they agree in look.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

CURRENCY = "currency"
PERCENT = "percent"
HOURS = "hours"
DAYS = "days"
COUNT = "count"
YEAR = "year"
PERIOD = "period"  # month 1–12 or quarter 1–4 as a number
IDENTIFIER = "id"
DATE = "date"
NUMBER = "number"
TEXT = "text"

_CURRENCY_WORDS = ("cost", "budget", "amount", "value", "spend", "margin", "overspend", "estimate_at_completion",
                   "actual", "revenue", "price", "eur", "cost_to_go", "ctg")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")
_WORD_LABELS = {"id": "ID", "ctg": "CTG", "eac": "EAC", "pct": "(%)", "avg": "Average", "eur": "EUR", "pm": "PM"}


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def looks_like_dates(series: pd.Series) -> bool:
    """True for a datetime column, or a text column whose every non-empty value is an ISO date (SQLite's dates)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if _is_number(series) or pd.api.types.is_bool_dtype(series):
        return False
    values = series.dropna()
    if values.empty:
        return False
    if all(hasattr(v, "year") and hasattr(v, "month") and not isinstance(v, str) for v in values):
        return True  # datetime.date objects (the Databricks connector returns those)
    return all(isinstance(v, str) and _ISO_DATE.match(v) for v in values)


def _whole_numbers_within(series: pd.Series, low: int, high: int) -> bool:
    values = series.dropna()
    return bool(len(values)) and bool(((values % 1 == 0) & (values >= low) & (values <= high)).all())


def column_kind(name: str, series: pd.Series) -> str:
    """What the column's values mean: one of the module's kind constants."""
    lower = str(name).lower()
    if looks_like_dates(series):
        return DATE
    if not _is_number(series):
        return TEXT
    words = set(lower.split("_"))
    if lower.endswith("_id") or lower == "id":
        return IDENTIFIER
    if words & {"year"} and _whole_numbers_within(series, 1900, 2200):
        return YEAR
    if (lower == "month" or lower.endswith("_month")) and _whole_numbers_within(series, 1, 12):
        return PERIOD
    if (lower == "quarter" or lower.endswith("_quarter")) and _whole_numbers_within(series, 1, 4):
        return PERIOD
    if words & {"pct", "percent", "percentage", "share", "rate"}:
        return PERCENT
    if words & {"hours", "hour"}:
        return HOURS
    if words & {"days", "day"}:
        return DAYS
    if words & {"count", "number", "customers", "projects", "employees"} or lower.startswith(("n_", "num_")):
        return COUNT
    if any(word in lower for word in _CURRENCY_WORDS):
        return CURRENCY
    return NUMBER


def column_kinds(df: pd.DataFrame) -> dict[str, str]:
    """``{column: kind}`` for every column of ``df``."""
    return {str(c): column_kind(str(c), df[c]) for c in df.columns}


def human_label(name: str) -> str:
    """``customer_count`` → ``Customer count``; ``billable_share_pct`` → ``Billable share (%)``."""
    words = [w for w in re.split(r"[_\s]+", str(name).strip()) if w]
    if not words:
        return str(name)
    out = [_WORD_LABELS.get(w.lower(), w.lower()) for w in words]
    first = out[0]
    out[0] = first if first.isupper() or first.startswith("(") else first[:1].upper() + first[1:]
    return " ".join(out)


def _percent_scale(series: pd.Series | None) -> float:
    """1 when values are already in percent (0–100), 100 when they are fractions (0–1)."""
    if series is None:
        return 1.0
    values = series.dropna()
    return 100.0 if len(values) and values.abs().max() <= 1.0 else 1.0


def format_value(value: Any, kind: str, series: pd.Series | None = None) -> str:
    """One value as a person reads it: ``€ 2,862,576``, ``€ -1,836,735``, ``42.5%``, ``1,234 h``, ``2024-03-01``."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if kind == DATE:
        try:
            return pd.Timestamp(value).strftime("%Y-%m-%d")
        except (ValueError, TypeError):
            return str(value)
    if kind == TEXT or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        return str(value)
    number = float(value)
    if kind == CURRENCY:
        # as the table shows it ("€ 2,862,576", "€ -1,836,735"); a no-break space keeps "€" and the number on one line
        return f"€\u00a0{number:,.0f}"
    if kind == PERCENT:
        return f"{number * _percent_scale(series):,.1f}%"
    if kind == HOURS:
        return f"{number:,.1f}\u00a0h" if number % 1 else f"{number:,.0f}\u00a0h"
    if kind == DAYS:
        return f"{number:,.0f}\u00a0days"
    if kind in (YEAR, PERIOD, IDENTIFIER):
        return f"{number:.0f}"
    if kind == COUNT or number.is_integer():
        return f"{number:,.0f}"
    return f"{number:,.2f}"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# the year a month without a year column is dated in: Excel's own "no year" (its day 1 is 1900-01-01); only the
# month name is ever shown, the date exists so that months sort Jan..Dec and MONTH() works in a spreadsheet
NO_YEAR = 1900
MONTH_TABLE_FORMAT = "MMM"  # momentJS, for st.column_config.DateColumn: "Mar"
MONTH_EXCEL_FORMAT = "mmm"  # Excel: "Mar"


def _names_a_month(column: str) -> bool:
    name = str(column).lower()
    return name == "month" or name.endswith("_month")


def is_month(column: str, kind: str) -> bool:
    """True for a month-number column (``month``, ``posting_month`` holding 1–12): shown as ``Jan``..``Dec``."""
    return kind == PERIOD and _names_a_month(column)


def month_dates(df: pd.DataFrame, column: str) -> pd.Series:
    """The month numbers in ``df[column]`` as the first day of each month, so they show as month names yet sort as
    months. Dated in the row's year when exactly one year column accompanies them (months of several years then sort
    in time order), else in :data:`NO_YEAR`."""
    years = [c for c, kind in column_kinds(df).items() if kind == YEAR]
    months = pd.to_numeric(df[column], errors="coerce")
    year = pd.to_numeric(df[years[0]], errors="coerce") if len(years) == 1 else pd.Series(NO_YEAR, index=df.index)
    parts = pd.DataFrame({"year": year.fillna(NO_YEAR), "month": months, "day": 1})
    return pd.to_datetime(parts, errors="coerce")


def period_label(column: str, value: object) -> str:
    """A month number as ``Jan``, a quarter as ``Q1``, a year as ``2024``."""
    number = int(float(value))  # type: ignore[arg-type]
    name = column.lower()
    if _names_a_month(name):
        return _MONTHS[number - 1]
    if name == "quarter" or name.endswith("_quarter"):
        return f"Q{number}"
    return str(number)


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,234 rows``."""
    return f"{count:,} {word if count == 1 else (plural_word or word + 's')}"


# ----------------------------------------------------------------------------------------------- the table
def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` ready for ``st.dataframe``: ISO date text turned into real dates (so DateColumn formats them), and month
    numbers into the month's first day (shown as ``Mar`` by :func:`column_config`, sorted Jan..Dec)."""
    out = df.copy()
    kinds = column_kinds(df)
    for column in out.columns:
        if is_month(str(column), kinds[str(column)]):
            out[column] = month_dates(df, column)
        elif not pd.api.types.is_datetime64_any_dtype(out[column]) and looks_like_dates(out[column]):
            out[column] = pd.to_datetime(out[column], errors="coerce")
    return out


#: How the chat's table shows each kind of number (printf style, as Streamlit has supported since before 1.30, so an
#: older Databricks Apps runtime renders them the same); the table's Streamlit columns are built in ``ctg_app.ui.table``.
TABLE_FORMATS = {
    DATE: "YYYY-MM-DD",
    CURRENCY: "€ %,.0f",
    HOURS: "%,.1f h",
    DAYS: "%,.0f days",
    COUNT: "%,d",
    YEAR: "%d",
    PERIOD: "%d",
    IDENTIFIER: "%d",
    NUMBER: "%,.2f",
}


def table_format(kind: str, series: pd.Series | None = None) -> str | None:
    """The table's display format for a column of ``kind`` (None: shown as text)."""
    if kind == PERCENT:
        return "%.1f %%" if _percent_scale(series) == 1 else "%.3f"
    return TABLE_FORMATS.get(kind)


# ----------------------------------------------------------------------------------------------- Excel
EXCEL_FORMATS = {
    CURRENCY: '"€ "#,##0;"€ -"#,##0',
    PERCENT: '0.0"%"',
    HOURS: '#,##0.0 "h"',
    DAYS: '#,##0 "days"',
    COUNT: "#,##0",
    YEAR: "0",
    PERIOD: "0",
    IDENTIFIER: "0",
    NUMBER: "#,##0.00",
    DATE: "yyyy-mm-dd",
}


def excel_format(kind: str, series: pd.Series | None = None) -> str | None:
    """The Excel number format for a column kind (``None`` for text)."""
    if kind == PERCENT and _percent_scale(series) != 1:
        return "0.0%"  # fractions: Excel's own percent format multiplies by 100
    return EXCEL_FORMATS.get(kind)


# ----------------------------------------------------------------------------------------------- SQL
def pretty_sql(sql: str, dialect: str | None = None) -> str:
    """``sql`` laid out on several lines by sqlglot (the text as given when it does not parse)."""
    try:
        import sqlglot

        statements = sqlglot.transpile(sql, read=dialect or None, write=dialect or None, pretty=True)
    except Exception as exc:  # any parse problem: show the SQL as written
        log.debug("could not pretty-print SQL: %s", type(exc).__name__)
        return sql
    return ";\n\n".join(_join_single_items(s) for s in statements) if statements else sql


def _join_single_items(sql: str) -> str:
    """``GROUP BY\n  country`` → ``GROUP BY country``: a clause with one short item stays on one line."""
    lines = sql.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        after = lines[i + 2] if i + 2 < len(lines) else ""
        if (nxt is not None and line.strip().isupper() and line.strip().replace(" ", "").isalpha()
                and len(nxt) - len(nxt.lstrip()) == indent + 2
                and len(after) - len(after.lstrip()) <= indent and len(line) + len(nxt.strip()) < 80):
            out.append(f"{line} {nxt.strip()}")
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out)
