"""The drill-down list of questions that went wrong: answers the assistant declined and answers voted 👎.

Registered as the report ``problem_questions`` (Databricks SQL once, sqlglot for the spool). The question text comes
from the session's ``generate_question`` event (its captured, redacted ``question``):

- a **declined** answer is a ``sql_query`` event with ``details.declined = true``; its question is the session's
  latest question before it;
- a **👎 vote** is an ``answer_feedback`` event with ``details.helpful = false`` (the session's last vote per turn
  counts, as in the answer-quality panel); its question is the question of the voted turn. Turns are numbered per
  session as the chat numbers them (each question, edit run and suggestion list is a turn); when that numbering
  cannot be followed (an edit turn, a session that began before the window) the latest question before the vote is
  used.

Each row can be reviewed and promoted into the training file (:mod:`ctg_app.chatbot.data.promote`, from the usage page).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ctg_app.tracking.analytics.reports import ReportSpec, _as_naive_utc, _register, sql_literal
from ctg_app.tracking.recording.actions import Actions

KIND_DECLINED = "declined"
KIND_UNHELPFUL = "unhelpful"
COLUMNS = ("timestamp", "user", "kind", "question", "intent", "reason", "comment", "session_id")

_READ = (Actions.GENERATE_QUESTION, Actions.SQL_QUERY, Actions.EDIT_SQL, Actions.VIEW_RANDOM_QUESTIONS,
         Actions.ANSWER_FEEDBACK)
_ORDER = {a: i for i, a in enumerate(_READ)}


def _details(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if isinstance(value, str) and value.strip() else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _problem_rows(rows: Iterable[tuple]) -> pd.DataFrame:
    """``(session_id, timestamp, user, action, status, operation, details)`` rows → one row per declined answer and
    per 👎 vote, newest first."""
    per_session: defaultdict[str, list[tuple]] = defaultdict(list)
    for session_id, timestamp, user, action, status, operation, details in rows:
        per_session[session_id or ""].append((_as_naive_utc(timestamp), _ORDER.get(action, len(_ORDER)), action,
                                              status, operation, user, _details(details)))
    records: list[dict[str, Any]] = []
    for session_id, events in per_session.items():
        events.sort(key=lambda e: (e[0], e[1]))
        turns: dict[int, str | None] = {}  # turn id → its question (None: not a question turn)
        turn = 0
        last_question = ""
        votes: dict[Any, dict[str, Any]] = {}
        for moment, _, action, status, operation, user, details in events:
            if action == Actions.GENERATE_QUESTION and status == "ok":
                turn += 1
                last_question = str(details.get("question") or "")
                turns[turn] = last_question
            elif action == Actions.VIEW_RANDOM_QUESTIONS and status == "ok" or \
                    (action == Actions.EDIT_SQL or operation == Actions.EDIT_SQL):
                turn += 1
                turns[turn] = None
            elif action == Actions.SQL_QUERY and status == "ok" and details.get("declined") is True:
                records.append({"timestamp": moment, "user": user, "kind": KIND_DECLINED, "question": last_question,
                                "intent": details.get("intent"), "reason": None, "comment": None,
                                "session_id": session_id or None})
            elif action == Actions.ANSWER_FEEDBACK and "helpful" in details:
                voted = details.get("turn")
                question = turns.get(voted) if isinstance(voted, int) else None
                votes[voted if voted is not None else moment] = {
                    "timestamp": moment, "user": user, "kind": KIND_UNHELPFUL,
                    "question": question or last_question, "intent": details.get("intent"),
                    "reason": details.get("reason"), "comment": details.get("comment"),
                    "session_id": session_id or None, "_helpful": details.get("helpful")}
        records.extend({k: v for k, v in vote.items() if k != "_helpful"} for vote in votes.values()
                       if vote["_helpful"] is False)
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    if frame.empty:
        return frame
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame.sort_values(["timestamp", "kind", "question"], ascending=[False, True, True],
                             kind="stable").reset_index(drop=True)


_IN_READ = ", ".join(sql_literal(a) for a in _READ)

_register(ReportSpec(
    name="problem_questions",
    title="Declined and 👎 questions",
    description=("Every answer the assistant declined and every answer voted unhelpful, with the question asked, "
                 "its intent and the reason given; newest first. Review and promote them into the training file."),
    sql=f"""SELECT session_id, timestamp, user, action, status, operation, details FROM {{events}}
WHERE {{where}} AND (action IN ({_IN_READ}) OR operation = 'edit_sql')""",
    default_days=30,
    columns=COLUMNS,
    reduce_rows=_problem_rows,
))
