"""Short sentences that answer the question, computed from the WHOLE result frame (never a sample).

Offline these templates are the summary; with a language model, :func:`aggregates_text` is what the model is shown
(row count, totals, extremes and time span of the full result), so its summary cannot describe a truncated head.
Every number is written with :func:`ctg_app.chatbot.present.formatting.format_value`, like the table shows it.
"""

from __future__ import annotations

import pandas as pd

from ctg_app.chatbot.present import formatting as fmt

_ADDITIVE = (fmt.CURRENCY, fmt.HOURS, fmt.COUNT, fmt.NUMBER)
_TIME = (fmt.DATE, fmt.YEAR, fmt.PERIOD)
_STOCK_WORDS = ("to_go", "remaining", "balance", "estimate", "latest", "share", "avg", "average")


def _parts(df: pd.DataFrame) -> tuple[dict[str, str], list[str], str | None, str | None]:
    kinds = fmt.column_kinds(df)
    measures = [c for c in df.columns if kinds[str(c)] not in (fmt.TEXT, fmt.DATE, fmt.IDENTIFIER, fmt.YEAR,
                                                               fmt.PERIOD)]
    labels = [c for c in df.columns if kinds[str(c)] == fmt.TEXT]
    times = [c for c in df.columns if kinds[str(c)] in _TIME]
    label = labels[0] if labels else None
    time = times[0] if times and (label is None or list(df.columns).index(times[0]) == 0) else None
    return kinds, measures, label, time


def _value(df: pd.DataFrame, column: str, value: object, kinds: dict[str, str]) -> str:
    return fmt.format_value(value, kinds[str(column)], df[column])


def _name(column: str) -> str:
    return fmt.human_label(column).lower().replace("ctg", "CTG")


def _total_name(column: str) -> str:
    name = _name(column)
    return name[len("total "):] if name.startswith("total ") else name


def _is_stock(column: str) -> bool:
    """Snapshot values (cost to go, remaining budget, an estimate) do not add up over time."""
    return any(word in str(column).lower() for word in _STOCK_WORDS)


def _when(df: pd.DataFrame, column: str, value: object, kinds: dict[str, str]) -> str:
    kind = kinds[str(column)]
    if kind == fmt.PERIOD:
        return fmt.period_label(str(column), value)  # "Mar", "Q2": as the chart's axis says it
    return _value(df, column, value, kinds)


def summarize_frame(df: pd.DataFrame | None, question: str = "", interpretation: str = "") -> str:
    """A few short sentences answering the question from the full result ``df`` (Markdown)."""
    if df is None or df.empty:
        return "No rows match this question."
    kinds, measures, label, time = _parts(df)
    if df.shape == (1, 1):
        column = df.columns[0]
        return f"{fmt.human_label(column)}: **{_value(df, column, df.iat[0, 0], kinds)}**."
    if len(df) == 1:
        shown = [f"{fmt.human_label(c)} **{_value(df, c, df[c].iat[0], kinds)}**" for c in df.columns[:6]]
        return "One row: " + ", ".join(shown) + "."
    n = len(df)
    sentences = [f"**{fmt.plural(n, 'row')}**" + (f", one per {_name(label)}." if label is not None and
                                                  df[label].is_unique else ".")]
    if not measures:
        return " ".join(sentences)
    first = measures[0]
    series = df[first].dropna()
    if series.empty:
        return " ".join(sentences)
    additive = [m for m in measures[:3] if kinds[str(m)] in _ADDITIVE and not (time is not None and _is_stock(m))]
    if additive:
        totals = [f"{_total_name(m)} **{_value(df, m, df[m].sum(), kinds)}**" for m in additive]
        sentences.append("Total " + ", ".join(totals) + ".")
    elif kinds[str(first)] in (fmt.PERCENT, fmt.DAYS):
        sentences.append(f"Average {_name(first)}: **{_value(df, first, series.mean(), kinds)}**.")
    if time is not None:
        ordered = df.dropna(subset=[first]).sort_values(time)
        start, end = ordered.iloc[0], ordered.iloc[-1]
        peak = ordered.loc[ordered[first].idxmax()]
        sentences.append(
            f"From {_when(df, time, start[time], kinds)} to {_when(df, time, end[time], kinds)} {_name(first)} went "
            f"from {_value(df, first, start[first], kinds)} to {_value(df, first, end[first], kinds)}; the highest was "
            f"{_value(df, first, peak[first], kinds)} in {_when(df, time, peak[time], kinds)}.")
    elif label is not None:
        top, low = df.loc[series.idxmax()], df.loc[series.idxmin()]
        sentences.append(f"Highest {_name(first)}: **{top[label]}** ({_value(df, first, top[first], kinds)}); "
                         f"lowest: {low[label]} ({_value(df, first, low[first], kinds)}).")
    for measure in measures[:3]:
        negative = int((df[measure] < 0).sum())
        if 0 < negative < n and kinds[str(measure)] == fmt.CURRENCY:
            sentences.append(f"{fmt.plural(negative, 'row')} of {n:,} {'has' if negative == 1 else 'have'} a "
                             f"negative {_name(measure)}.")
            break
    return " ".join(sentences)


def aggregates_text(df: pd.DataFrame) -> str:
    """Plain-text aggregates of the WHOLE result, for a language model to summarise (no raw row dump)."""
    if df is None or df.empty:
        return "The result has no rows."
    kinds, measures, label, time = _parts(df)
    lines = [f"Rows: {len(df):,}. Columns: {', '.join(f'{c} ({kinds[str(c)]})' for c in df.columns)}."]
    for measure in measures[:5]:
        series = df[measure].dropna()
        if series.empty:
            continue
        line = (f"{measure}: total {_value(df, measure, series.sum(), kinds)}, average "
                f"{_value(df, measure, series.mean(), kinds)}, min {_value(df, measure, series.min(), kinds)}, "
                f"max {_value(df, measure, series.max(), kinds)}, negative values {int((series < 0).sum())}")
        key = time if time is not None else label
        if key is not None:
            top = df.loc[series.nlargest(3).index]
            line += "; largest: " + ", ".join(f"{row[key]} = {_value(df, measure, row[measure], kinds)}"
                                              for _, row in top.iterrows())
        lines.append(line + ".")
    if label is not None:
        lines.append(f"{label}: {df[label].nunique():,} distinct values.")
    if time is not None:
        lines.append(f"{time}: from {df[time].min()} to {df[time].max()}.")
    return "\n".join(lines)
