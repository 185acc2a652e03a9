"""Answer quality from usage events: feedback counts and helpful rate, decline rate, edit-after-answer rate, and the
intents most often marked unhelpful or edited.

:func:`answer_quality` takes an events DataFrame shaped like the spool / Delta table (``timestamp``, ``user``,
``action``, ``status``, ``details`` as JSON text or dict, ``session_id``; ``operation`` and ``seq`` used when present)
and returns :class:`AnswerQuality` (the usage page shows it: :mod:`ctg_app.ui.answer_quality`).

Definitions (per session, events in time order):

- feedback: the last ``answer_feedback`` per (session, turn) counts — a user who changes 👍 to 👎, or adds a reason
  after 👎, is one vote;
- decline rate: ``sql_query`` events with ``declined: true`` / all successful ``sql_query`` events;
- edit after answer: an answered question (``sql_query`` ok, not declined) followed by an ``edit_sql`` (or an edit
  that failed, operation ``edit_sql``) before the session's next question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ctg_app.tracking import Actions

TOP_INTENTS = 5
_INTENT_COLUMNS = ["intent", "answers", "unhelpful", "edited"]


@dataclass(frozen=True)
class AnswerQuality:
    """The answer-quality figures (rates are ``None`` when there is nothing to divide by)."""

    feedback: int = 0
    helpful: int = 0
    unhelpful: int = 0
    questions_answered: int = 0
    questions_declined: int = 0
    answers_edited: int = 0
    intents: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_INTENT_COLUMNS), compare=False)

    @property
    def helpful_rate(self) -> float | None:
        """Share of voted answers marked helpful."""
        return self.helpful / self.feedback if self.feedback else None

    @property
    def decline_rate(self) -> float | None:
        """Share of questions the assistant declined."""
        total = self.questions_answered + self.questions_declined
        return self.questions_declined / total if total else None

    @property
    def edit_after_answer_rate(self) -> float | None:
        """Share of answered questions whose SQL the user then edited."""
        return self.answers_edited / self.questions_answered if self.questions_answered else None


def _details(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _ordered(events: pd.DataFrame) -> pd.DataFrame:
    frame = events.copy()
    if "session_id" not in frame:
        frame["session_id"] = frame.get("user", "")
    frame["session_id"] = frame["session_id"].fillna("").astype(str)
    frame["_details"] = [_details(v) for v in frame["details"]] if "details" in frame else [{}] * len(frame)
    frame["_time"] = pd.to_datetime(frame["timestamp"], errors="coerce", utc=True) if "timestamp" in frame else 0
    frame["_pos"] = range(len(frame))
    keys = ["session_id", "_time", "seq"] if "seq" in frame else ["session_id", "_time", "_pos"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def answer_quality(events: pd.DataFrame | None) -> AnswerQuality:
    """The answer-quality figures of ``events`` (see the module docstring for the definitions)."""
    if events is None or events.empty or "action" not in events:
        return AnswerQuality()
    frame = _ordered(events)
    status = frame["status"] if "status" in frame else pd.Series("ok", index=frame.index)
    operation = frame["operation"] if "operation" in frame else pd.Series("", index=frame.index)

    votes: dict[tuple[str, Any], dict[str, Any]] = {}
    answered = declined = edited = 0
    per_intent: dict[str, dict[str, int]] = {}

    def bump(intent: Any, key: str) -> None:
        name = str(intent) if intent else "(unknown)"
        per_intent.setdefault(name, {"answers": 0, "unhelpful": 0, "edited": 0})[key] += 1

    for _, session in frame.groupby("session_id", sort=False):
        open_answer: dict[str, Any] | None = None  # the session's latest answered question, until the next one
        for index, row in session.iterrows():
            action, details = row["action"], row["_details"]
            if action == Actions.GENERATE_QUESTION:
                open_answer = None
            elif action == Actions.SQL_QUERY and status[index] == "ok":
                if details.get("declined"):
                    declined += 1
                    open_answer = None
                else:
                    answered += 1
                    open_answer = {"intent": details.get("intent"), "edited": False}
                    bump(details.get("intent"), "answers")
            elif action == Actions.EDIT_SQL or operation[index] == Actions.EDIT_SQL:
                if open_answer is not None and not open_answer["edited"]:
                    open_answer["edited"] = True
                    edited += 1
                    bump(open_answer["intent"], "edited")
            elif action == Actions.ANSWER_FEEDBACK and "helpful" in details:
                votes[(row["session_id"], details.get("turn", index))] = details
    helpful = sum(1 for vote in votes.values() if vote.get("helpful") is True)
    unhelpful = sum(1 for vote in votes.values() if vote.get("helpful") is False)
    for vote in votes.values():
        if vote.get("helpful") is False:
            name = str(vote.get("intent") or "(unknown)")
            per_intent.setdefault(name, {"answers": 0, "unhelpful": 0, "edited": 0})["unhelpful"] += 1
    rows = [{"intent": name, **counts} for name, counts in per_intent.items() if counts["unhelpful"] or counts["edited"]]
    intents = pd.DataFrame(rows, columns=_INTENT_COLUMNS)
    if not intents.empty:
        intents["_problems"] = intents["unhelpful"] + intents["edited"]
        intents = (intents.sort_values(["_problems", "intent"], ascending=[False, True]).drop(columns="_problems")
                   .head(TOP_INTENTS).reset_index(drop=True))
    return AnswerQuality(feedback=len(votes), helpful=helpful, unhelpful=unhelpful, questions_answered=answered,
                         questions_declined=declined, answers_edited=edited, intents=intents)
