"""Deterministic Plotly charts for a result frame (no generated code is executed).

The chart is chosen from what the values are, not from column names: a time axis only for real dates (datetime
values or ISO date text) or for a month / quarter / year column whose values are whole numbers in that range; a
``*_date`` column holding amounts is a measure like any other. Several measures become grouped bars (budget vs
actual); many categories are cut to the top N by the first measure, and the plan says so in ``note``.
Choosing the chart in code keeps charts reproducible and avoids ``exec`` of model-written Python, which is what
Vanna's ``get_plotly_figure`` would do with LLM output.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ctg_app.chatbot.present import formatting as fmt
from ctg_app.chatbot.present.formatting import period_label
from ctg_app.tracking import ChartError

MAX_BARS = 30
MAX_MEASURES = 4
TITLE_WIDTH = 45  # characters per title line: fits a 390 px phone
_TIME_KINDS = (fmt.DATE, fmt.YEAR, fmt.PERIOD)
_NOT_MEASURES = (fmt.IDENTIFIER, fmt.YEAR, fmt.PERIOD, fmt.DATE, fmt.TEXT)


@dataclass(frozen=True)
class ChartPlan:
    """What will be drawn: ``kind`` is ``indicator``, ``line``, ``bar`` or ``scatter``."""

    kind: str
    x: str | None
    measures: tuple[str, ...]
    rows_plotted: int
    rows_total: int
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """A visible note when the chart leaves rows out (empty otherwise)."""
        if self.rows_plotted < self.rows_total:
            by = fmt.human_label(self.measures[0]).lower() if self.measures else "value"
            return (f"The chart shows the top {self.rows_plotted} of {self.rows_total:,} rows by {by}; "
                    "the table and the download have them all.")
        return ""


def _measures(df: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    return [c for c in df.columns if kinds[str(c)] not in _NOT_MEASURES and fmt._is_number(df[c])]


def can_chart(df: pd.DataFrame | None) -> bool:
    """True when the frame has a row and a measure (a number that is not an id, year or period)."""
    if df is None or df.empty:
        return False
    return bool(_measures(df, fmt.column_kinds(df)))


def plan_chart(df: pd.DataFrame) -> ChartPlan:
    """Choose the chart for ``df``; raises :class:`ChartError` when nothing fits."""
    if not can_chart(df):
        raise ChartError("the result has no numeric column to chart")
    kinds = fmt.column_kinds(df)
    measures = _measures(df, kinds)
    others = [c for c in df.columns if c not in measures]
    time_axis = [c for c in others if kinds[str(c)] in _TIME_KINDS]
    total = len(df)
    if len(df) == 1 and not [c for c in others if kinds[str(c)] == fmt.TEXT] and len(measures) == 1:
        return ChartPlan("indicator", None, (measures[0],), 1, 1, kinds)
    if time_axis:
        return ChartPlan("line", time_axis[0], tuple(measures[:MAX_MEASURES]), total, total, kinds)
    if others:
        return ChartPlan("bar", others[0], tuple(measures[:MAX_MEASURES]), min(total, MAX_BARS), total, kinds)
    if len(measures) >= 2:
        return ChartPlan("scatter", measures[0], (measures[1],), total, total, kinds)
    return ChartPlan("bar", None, (measures[0],), min(total, MAX_BARS), total, kinds)


def _axis_title(plan: ChartPlan) -> str:
    kinds = {plan.kinds.get(m) for m in plan.measures}
    if len(plan.measures) == 1:
        return fmt.human_label(plan.measures[0]) + (" (€)" if kinds == {fmt.CURRENCY} else "")
    if kinds == {fmt.CURRENCY}:
        return "Amount (€)"
    if kinds == {fmt.HOURS}:
        return "Hours"
    return "Value"


def _tick_format(plan: ChartPlan) -> dict[str, str]:
    # compact ticks ("2M", "-500k") stay readable on a phone and keep the sign in front; hover shows the full value
    return {"tickformat": "~s", "hoverformat": ",.0f" if plan.kinds.get(plan.measures[0]) in (
        fmt.CURRENCY, fmt.COUNT) else ",.2~f"}


def build_chart(df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """A line, (grouped) bar, scatter or indicator figure for ``df``; raises :class:`ChartError` when nothing fits."""
    plan = plan_chart(df)
    labels = {str(c): fmt.human_label(str(c)) for c in df.columns}
    if plan.kind == "indicator":
        measure = plan.measures[0]
        value = df[measure].iat[0]
        fig = go.Figure(go.Indicator(mode="number", value=float(value),
                                     number={"valueformat": ",.0f", **({"prefix": "€"} if plan.kinds[measure] ==
                                                                       fmt.CURRENCY else {})},
                                     title={"text": labels[measure]}))
    elif plan.kind == "line":
        data = df.copy()
        if plan.kinds[str(plan.x)] == fmt.DATE:
            data[plan.x] = pd.to_datetime(data[plan.x], errors="coerce")
        data = data.sort_values(plan.x)
        if plan.kinds[str(plan.x)] != fmt.DATE:
            data[plan.x] = [period_label(str(plan.x), v) for v in data[plan.x]]
        fig = px.line(data, x=plan.x, y=list(plan.measures), markers=True, labels=labels)
        if plan.kinds[str(plan.x)] != fmt.DATE:
            fig.update_xaxes(type="category")  # "2024" or "Q1" are names of periods, not numbers to interpolate
    elif plan.kind == "bar" and plan.x is not None:
        data = df.nlargest(plan.rows_plotted, plan.measures[0]) if plan.rows_plotted < plan.rows_total else df
        data = data.copy()
        data[plan.x] = data[plan.x].astype(str)
        fig = px.bar(data, x=plan.x, y=list(plan.measures), barmode="group", labels=labels)
    elif plan.kind == "scatter":
        fig = px.scatter(df, x=plan.x, y=plan.measures[0], labels=labels)
    else:
        data = df.nlargest(plan.rows_plotted, plan.measures[0]) if plan.rows_plotted < plan.rows_total else df
        fig = px.bar(data.reset_index(drop=True), y=plan.measures[0], labels=labels)
    if plan.kind != "indicator":
        fig.update_yaxes(title_text=_axis_title(plan), **_tick_format(plan))
        if plan.x is not None and plan.kind != "scatter":
            fig.update_xaxes(title_text=labels[str(plan.x)])
        fig.update_layout(legend_title_text="", showlegend=len(plan.measures) > 1,
                          legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})
        fig.for_each_trace(lambda t: t.update(name=labels.get(t.name, t.name)))
    # Plotly titles never wrap by themselves, and the legend sits between title and plot: make room for both, with
    # the legend's worst case (one row per measure, on a phone)
    lines = textwrap.wrap(title, TITLE_WIDTH) if title else []
    legend_rows = len(plan.measures) if plan.kind != "indicator" and len(plan.measures) > 1 else 0
    top = 20 + 22 * len(lines) + 22 * legend_rows
    fig.update_layout(title={"text": "<br>".join(lines), "x": 0, "xanchor": "left", "yref": "container", "y": 0.98,
                             "yanchor": "top"} if lines else None,
                      margin={"l": 10, "r": 10, "t": top, "b": 10})
    return fig
