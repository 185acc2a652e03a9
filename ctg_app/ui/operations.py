"""The chat's user-facing operations, each recorded by ``@tracked`` as exactly one usage event per call.

Each function is called once per user intent (never on a plain Streamlit rerun) and does its work through the
:class:`~ctg_app.chatbot.assistant.Assistant`; this module adds the recording and Streamlit's caches. ``@tracked`` sits above
``@st.cache_data`` (via the cached helpers below) so a cached answer is still recorded. On an exception the decorator
records the classified error action and re-raises; the page turns it into a friendly message.

What a question records (the decision for the spec's actions):

- submitted → ``generate_question`` (the question is captured, bounded and redacted);
- SQL generated and validated → ``sql_query`` with ``{"declined": false}``; SQL the read-only policy refuses
  (:mod:`ctg_app.chatbot.policy`) → ``sql_error``; the LLM failing → ``llm_error``;
- the offline model declining an unknown question is not an error: ``sql_query`` with ``{"declined": true}``, status
  ok, and nothing is executed (no ``execute_sql``);
- the SQL run → ``execute_sql`` (or ``sql_error`` / ``database_error``);
- then ``generate_chart`` and ``generate_summary`` when their sidebar toggles are on;
- 👍 / 👎 on an answer → ``answer_feedback`` (helpful, the turn, its intent; a reason only when the user chose one).

Re-running SQL the user edited records ``edit_sql`` alone (the edit *and* its run are one user action; an extra
``execute_sql`` would double-count executions and break "one action, one event").
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.assistant import Assistant
from ctg_app.chatbot.data.source import acting_identity_key
from ctg_app.tracking import Actions, tracked

log = logging.getLogger(__name__)

CACHE_TTL_S = 600


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=500)
def _cached_answer_fields(question: str, assistant_key: str, _assistant: Assistant, context_key: str = "",
                          _previous: SqlAnswer | None = None) -> dict[str, Any]:
    # A plain dict, not the SqlAnswer itself: st.cache_data pickles what it stores, and pickling an instance fails
    # once Streamlit has reloaded the module that defines its class (what a developer's file save does).
    return dataclasses.asdict(_assistant.ask(question, _previous))


def _context_key(previous: SqlAnswer | None) -> str:
    # the cached answer to a follow-up depends on what it follows: key it by that turn's SQL and context
    if previous is None:
        return ""
    seed = repr((getattr(previous, "sql", None), sorted((getattr(previous, "context", None) or {}).items(),
                                                        key=lambda kv: str(kv[0]))))
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def _cached_answer(question: str, assistant_key: str, assistant: Assistant,
                   previous: SqlAnswer | None = None) -> SqlAnswer:
    fields = _cached_answer_fields(question, assistant_key, assistant, _context_key(previous), previous)
    known = {f.name for f in dataclasses.fields(SqlAnswer)}
    return SqlAnswer(**{k: v for k, v in fields.items() if k in known})


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=200)
def _cached_run_sql(sql: str, source_key: str, _assistant: Assistant) -> pd.DataFrame:
    return _assistant.run(sql)


def clear_caches() -> None:
    """Forget cached answers and query results."""
    _cached_answer_fields.clear()
    _cached_run_sql.clear()


@tracked(Actions.APP_START)
def record_app_start() -> None:
    """The browser session started the app (called once per session)."""


@tracked(Actions.VIEW_RANDOM_QUESTIONS, details=lambda qs: {"shown": len(qs)})
def suggest_questions(assistant: Assistant, n: int = 5, rng: random.Random | None = None) -> list[str]:
    """A random sample of ``n`` trained questions."""
    questions = [q for q in assistant.questions() if q]
    return (rng or random).sample(questions, min(n, len(questions)))


@tracked(Actions.GENERATE_QUESTION, capture=("question",))
def submit_question(question: str) -> str:
    """The user asked ``question``; returns it trimmed (raises ValueError when empty)."""
    cleaned = (question or "").strip()
    if not cleaned:
        raise ValueError("empty question")
    return cleaned


def _answer_details(answer: SqlAnswer) -> dict[str, Any]:
    details: dict[str, Any] = {"declined": answer.declined}
    if answer.score is not None:
        details["score"] = round(answer.score, 3)  # 1 exact, 0.7 composed or a follow-up, 0 declined
    for name in ("intent", "confidence"):
        if getattr(answer, name, None):
            details[name] = getattr(answer, name)
    return details


@tracked(Actions.SQL_QUERY, details=_answer_details)
def generate_sql(assistant: Assistant, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
    """SQL for ``question``, validated; a decline is returned as such. Raises SqlValidationError for bad SQL.

    ``previous`` is the answer this question follows up on."""
    answer = _cached_answer(question, assistant.cache_key, assistant, previous)
    if answer.declined:
        return answer
    assistant.validate(answer.sql or "")  # raises SqlValidationError with the reason
    return answer


@tracked(Actions.EXECUTE_SQL, details=lambda df: {"rows": len(df), "columns": len(df.columns)})
def execute_sql(assistant: Assistant, sql: str) -> pd.DataFrame:
    """Run generated SQL against the data source (through the read-only policy)."""
    return _cached_run_sql(sql, assistant.cache_key + acting_identity_key(), assistant)  # a user's rows are theirs


@tracked(Actions.EDIT_SQL, details=lambda df: {"rows": len(df), "columns": len(df.columns)})
def run_edited_sql(assistant: Assistant, sql: str) -> pd.DataFrame:
    """Validate and run SQL the user edited (one event: ``edit_sql``)."""
    assistant.validate(sql)  # raises SqlValidationError with the reason, also when the result is cached
    return _cached_run_sql(sql, assistant.cache_key + acting_identity_key(), assistant)  # a user's rows are theirs


@tracked(Actions.SELECT_COLUMNS, details=lambda cols: {"selected": len(cols)})
def select_columns(columns: Sequence[str]) -> list[str]:
    """The user chose which result columns to include."""
    return list(columns)


@tracked(Actions.DOWNLOAD_RESULTS, details=lambda info: info)
def record_download(rows: int, columns: int) -> dict[str, int]:
    """The user downloaded the result as Excel."""
    return {"rows": int(rows), "columns": int(columns)}


@tracked(Actions.GENERATE_CHART)
def generate_chart(assistant: Assistant, df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """A Plotly chart of the result (ChartError when the data cannot be charted)."""
    return assistant.chart(df, title=title)


@tracked(Actions.GENERATE_SUMMARY)
def generate_summary(assistant: Assistant, question: str, df: pd.DataFrame, interpretation: str = "") -> str:
    """A short summary of the WHOLE result ``df`` that answers the question."""
    return assistant.summarize(question, df, interpretation)


FEEDBACK_REASONS = ("Wrong numbers", "Misunderstood my question", "Missing data", "Chart or summary unclear", "Other")
MAX_COMMENT = 200


@tracked(Actions.ANSWER_FEEDBACK, details=lambda info: info)
def record_feedback(helpful: bool, *, turn: int, intent: str | None = None, interpretation: str = "",
                    confidence: str = "", edited: bool = False, reason: str = "", comment: str = "") -> dict[str, Any]:
    """The user marked an answer helpful (👍) or not (👎); returns the recorded details.

    The interpretation is recorded as a short id (its hash), not as text; ``reason`` must be one of
    :data:`FEEDBACK_REASONS`; ``comment`` is free text only when the user typed it (bounded here, redacted by the
    tracker like every detail)."""
    info: dict[str, Any] = {"helpful": bool(helpful), "turn": int(turn), "edited": bool(edited)}
    if intent:
        info["intent"] = str(intent)[:100]
    if interpretation:
        info["interpretation_id"] = hashlib.sha256(interpretation.encode()).hexdigest()[:12]
    if confidence:
        info["confidence"] = str(confidence)[:20]
    if reason in FEEDBACK_REASONS:
        info["reason"] = reason
    if comment and comment.strip():
        info["comment"] = comment.strip()[:MAX_COMMENT]
    return info
