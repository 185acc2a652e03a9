"""Answer-quality figures from usage events (issue 13): feedback, helpful, decline and edit-after-answer rates."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ctg_app.chatbot.answer_quality import AnswerQuality, answer_quality


def _event(session: str, second: int, action: str, status: str = "ok", operation: str | None = None,
           **details) -> dict:
    return {"timestamp": f"2026-12-01T09:00:{second:02d}Z", "user": f"{session}@x.example", "action": action,
            "status": status, "operation": operation or action, "details": json.dumps(details),
            "session_id": session}


def _events() -> pd.DataFrame:
    rows = [
        # session a: answered (ctg), edited, then 👎 with a later reason (one vote); answered (hours) and 👍
        _event("a", 1, "generate_question"), _event("a", 2, "sql_query", declined=False, intent="ctg_by_project"),
        _event("a", 3, "execute_sql"), _event("a", 4, "edit_sql"), _event("a", 5, "edit_sql"),
        _event("a", 6, "answer_feedback", helpful=False, turn=1, intent="ctg_by_project"),
        _event("a", 7, "answer_feedback", helpful=False, turn=1, intent="ctg_by_project", reason="Wrong numbers"),
        _event("a", 8, "generate_question"), _event("a", 9, "sql_query", declined=False, intent="hours"),
        _event("a", 10, "answer_feedback", helpful=True, turn=3, intent="hours"),
        # session b: a decline, then an answer whose edit failed (sql_error with operation edit_sql)
        _event("b", 1, "generate_question"), _event("b", 2, "sql_query", declined=True),
        _event("b", 3, "generate_question"), _event("b", 4, "sql_query", declined=False, intent="ctg_by_project"),
        _event("b", 5, "sql_error", status="error", operation="edit_sql"),
        # session c: the same turn number as in a is another vote (other session); changed its mind 👎 → 👍
        _event("c", 1, "answer_feedback", helpful=False, turn=1), _event("c", 2, "answer_feedback", helpful=True, turn=1),
        # a failed sql_query is neither answered nor declined
        _event("c", 3, "generate_question"), _event("c", 4, "llm_error", status="error", operation="sql_query"),
    ]
    return pd.DataFrame(rows)


def test_figures():
    quality = answer_quality(_events())
    assert (quality.feedback, quality.helpful, quality.unhelpful) == (3, 2, 1)
    assert quality.helpful_rate == pytest.approx(2 / 3)
    assert (quality.questions_answered, quality.questions_declined) == (3, 1)
    assert quality.decline_rate == pytest.approx(1 / 4)
    assert quality.answers_edited == 2  # two edits of one answer count once; a failed edit counts
    assert quality.edit_after_answer_rate == pytest.approx(2 / 3)
    top = quality.intents.to_dict("records")
    assert top[0] == {"intent": "ctg_by_project", "answers": 2, "unhelpful": 1, "edited": 2}
    assert [r["intent"] for r in top] == ["ctg_by_project"]  # "hours" was neither unhelpful nor edited


def test_order_comes_from_timestamps_not_row_order():
    shuffled = _events().sample(frac=1.0, random_state=3)
    assert answer_quality(shuffled).answers_edited == 2


def test_empty_and_odd_input():
    empty = answer_quality(pd.DataFrame())
    assert empty == AnswerQuality() and empty.intents.empty
    assert (empty.feedback, empty.helpful_rate, empty.decline_rate) == (0, None, None)
    assert empty.edit_after_answer_rate is None
    odd = pd.DataFrame([{"timestamp": "x", "action": "answer_feedback", "status": "ok", "details": "not json",
                         "session_id": None}])
    assert answer_quality(odd).feedback == 0


def test_render_panel():
    def page():
        import json as _json

        import pandas as _pd

        from ctg_app.ui.answer_quality import render_answer_quality

        rows = [{"timestamp": "2026-12-01T09:00:01Z", "action": "answer_feedback", "status": "ok",
                 "details": _json.dumps({"helpful": False, "turn": 1, "intent": "margin"}), "session_id": "s"}]
        render_answer_quality(_pd.DataFrame(rows))

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["Feedback", "Helpful rate", "Decline rate", "Edited after answer"]
    assert at.metric[1].value == "0%" and at.metric[2].value == "–"
    assert list(at.dataframe[0].value["Intent"]) == ["margin"]
