"""The conversation kept in the session: an ordered list of typed :class:`Turn` values.

A turn is what one user action produced: ``kind`` is ``question`` (asked, a follow-up or a suggestion clicked),
``edit`` (SQL the user edited and ran) or ``suggestions`` (the "Suggest questions" list). It holds everything needed
to render it again (answer, SQL, result frame, chart, summary, notes, feedback), so re-rendering the history never
runs an operation and never records an event. ``ctg_turn`` always points at the latest question or edit turn.

``state`` is any mutable mapping: the page passes ``st.session_state``, tests a plain dict. A :class:`Turn` has
slots, so assigning a misspelt field raises instead of silently adding a key.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ctg_app.chatbot.answering.answer import SqlAnswer

HISTORY = "ctg_history"
TURN = "ctg_turn"
TURN_SEQ = "ctg_turn_seq"
WELCOME = "ctg_welcome"
QUESTION, EDIT, SUGGESTIONS = "question", "edit", "suggestions"
MAX_TURNS = 40  # each turn holds its result frame and chart: bound a long session's memory

State = MutableMapping[str, Any]


@dataclass(slots=True, eq=False)
class Turn:
    """One turn of the conversation and everything needed to show it again."""

    id: int
    kind: str
    question: str
    follows: int | None = None  # the turn a follow-up question belongs to
    origin: int | None = None  # the turn whose SQL an edit started from
    answer: SqlAnswer | None = None
    sql: str | None = None
    df: pd.DataFrame | None = None
    columns: list[str] = field(default_factory=list)
    result_seq: int | None = None  # widget-key suffix of the shown result
    chart: Any = None  # a Plotly figure
    chart_plot_note: str = ""  # what the chart leaves out (e.g. "the top 30 of 120 rows")
    chart_note: str = ""  # why there is no chart
    summary: str = ""
    summary_note: str = ""  # why there is no summary
    excel: bytes | None = None  # the download, built once per column choice
    error: str = ""
    edited: bool = False
    followups: list[str] = field(default_factory=list)
    feedback: str | None = None  # "up" / "down"
    feedback_sent: bool = False  # the optional reason after 👎 was sent
    suggestions: list[str] = field(default_factory=list)

    @property
    def interpretation(self) -> str:
        """How the answer understood the question ("" when there is none)."""
        return str(getattr(self.answer, "interpretation", "") or "")

    def set_result(self, sql: str, df: pd.DataFrame) -> None:
        """Hold ``df`` as this turn's result of ``sql``; chart, summary and download are made afresh."""
        self.sql, self.df, self.columns = sql, df, list(df.columns)
        self.chart, self.summary, self.excel = None, "", None
        self.result_seq = self.id


def history(state: State) -> list[Turn]:
    """The turns of this session, oldest first."""
    return state.setdefault(HISTORY, [])


def add_turn(state: State, kind: str, question: str, **fields: Any) -> Turn:
    """Append a new turn (with a session-unique ``id``) and return it."""
    state[TURN_SEQ] = state.get(TURN_SEQ, 0) + 1
    turn = Turn(id=state[TURN_SEQ], kind=kind, question=question, **fields)
    turns = history(state)
    turns.append(turn)
    del turns[:-MAX_TURNS]
    if kind != SUGGESTIONS:
        state[TURN] = turn
    return turn


def last_answer(state: State) -> Turn | None:
    """The latest turn with an answered (not declined) question: what a typed follow-up refers to."""
    for turn in reversed(history(state)):
        if turn.kind == QUESTION and turn.answer is not None and not turn.answer.declined and turn.df is not None:
            return turn
    return None


def find(state: State, turn_id: int | None) -> Turn | None:
    """The turn with ``turn_id`` (None when the conversation was cleared since)."""
    return next((t for t in history(state) if t.id == turn_id), None)


def clear(state: State) -> None:
    """Start a new conversation (turn ids keep counting, so old widget keys never collide with new ones)."""
    state[HISTORY] = []
    state.pop(TURN, None)


def welcome_questions(state: State, questions: list[str], n: int = 6) -> list[str]:
    """``n`` example questions for the first screen, chosen once per session (stable across reruns and clicks).

    Taken evenly across the trained questions, which the training file groups by topic, so the examples cover
    projects, customers, budgets, costs, cost to go and hours rather than six variants of one intent."""
    if WELCOME not in state:
        unique = list(dict.fromkeys(q for q in questions if q))
        step = max(1, len(unique) // n) if unique else 1
        state[WELCOME] = unique[::step][:n]
    return list(state[WELCOME])
