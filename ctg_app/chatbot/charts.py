"""Deterministic Plotly charts for a result frame (no generated code is executed).

Choosing the chart from the frame's column types keeps charts reproducible and avoids ``exec`` of model-written
Python, which is what Vanna's ``get_plotly_figure`` would do with LLM output.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ctg_app.tracking.recording.errors import ChartError

_TIME_WORDS = ("date", "month", "quarter", "year", "week", "day")


def can_chart(df: pd.DataFrame | None) -> bool:
    """True when the frame has at least one numeric column and one row (a single number becomes an indicator)."""
    return df is not None and not df.empty and any(_is_number(df[c]) for c in df.columns)


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def build_chart(df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """A bar, line, scatter or indicator figure for ``df``; raises :class:`ChartError` when nothing fits."""
    if not can_chart(df):
        raise ChartError("the result has no numeric column to chart")
    numeric = [c for c in df.columns if _is_number(df[c])]
    others = [c for c in df.columns if c not in numeric]
    time_like = [c for c in df.columns if any(w in str(c).lower() for w in _TIME_WORDS)]
    if df.shape == (1, 1) or (len(df) == 1 and not others):
        fig = go.Figure(go.Indicator(mode="number", value=float(df[numeric[0]].iat[0]), title={"text": numeric[0]}))
    elif time_like:
        x = time_like[0]
        ys = [c for c in numeric if c != x][:3] or numeric[:1]
        fig = px.line(df.sort_values(x), x=x, y=ys, markers=True)
    elif others:
        x, y = others[0], numeric[0]
        data = df.nlargest(30, y) if len(df) > 30 else df
        fig = px.bar(data, x=x, y=y)
    elif len(numeric) >= 2:
        fig = px.scatter(df, x=numeric[0], y=numeric[1])
    else:
        fig = px.bar(df, y=numeric[0])
    if title:
        fig.update_layout(title=title)
    return fig
