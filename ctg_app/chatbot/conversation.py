"""The conversation kept in ``st.session_state``: an ordered list of turns, each a plain dict.

A turn is what one user action produced: ``kind`` is ``question`` (asked, a follow-up or a suggestion clicked),
``edit`` (SQL the user edited and ran) or ``suggestions`` (the "Suggest questions" list). It holds everything needed
to render it again (answer, SQL, result frame, chart, summary, notes, feedback), so re-rendering the history never
runs an operation and never records an event. ``ctg_turn`` always points at the latest question or edit turn.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

HISTORY = "ctg_history"
TURN = "ctg_turn"
TURN_SEQ = "ctg_turn_seq"
WELCOME = "ctg_welcome"
QUESTION, EDIT, SUGGESTIONS = "question", "edit", "suggestions"
MAX_TURNS = 40  # each turn holds its result frame and chart: bound a long session's memory

Turn = dict[str, Any]
State = MutableMapping[str, Any]


def history(state: State) -> list[Turn]:
    """The turns of this session, oldest first."""
    return state.setdefault(HISTORY, [])


def add_turn(state: State, kind: str, question: str, **fields: Any) -> Turn:
    """Append a new turn (with a session-unique ``id``) and return it."""
    state[TURN_SEQ] = state.get(TURN_SEQ, 0) + 1
    turn: Turn = {"id": state[TURN_SEQ], "kind": kind, "question": question, **fields}
    turns = history(state)
    turns.append(turn)
    del turns[:-MAX_TURNS]
    if kind != SUGGESTIONS:
        state[TURN] = turn
    return turn


def last_answer(state: State) -> Turn | None:
    """The latest turn with an answered (not declined) question: what a typed follow-up refers to."""
    for turn in reversed(history(state)):
        answer = turn.get("answer")
        if turn.get("kind") == QUESTION and answer is not None and not answer.declined and turn.get("df") is not None:
            return turn
    return None


def find(state: State, turn_id: int) -> Turn | None:
    """The turn with ``turn_id`` (None when the conversation was cleared since)."""
    return next((t for t in history(state) if t["id"] == turn_id), None)


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
