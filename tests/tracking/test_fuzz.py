"""Whatever the input, tracking never raises into the caller, and SQL-looking input is stored as data."""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctg_app.tracking import Actions, get_tracker, track_error, track_user_action_simple, tracked

NASTY_TEXT = st.one_of(
    st.none(),
    st.text(),
    st.text(min_size=5000, max_size=20000),
    st.binary(),
    st.sampled_from([
        "'); DROP TABLE events; --",
        "\" OR 1=1 --",
        "\x00\x01\x02",
        "\ud800 lone surrogate",
        "😀" * 500,
        "ctg_chatbot_user@eleviogroup.com\r\nX-Injected: yes",
    ]),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.text(), max_size=5),
    st.dictionaries(st.text(), st.text(), max_size=5),
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(user=NASTY_TEXT, action=NASTY_TEXT)
def test_track_user_action_simple_never_raises(tracking_spool, user, action):
    # Never raises, and the answer is the truth: True exactly when one event was added to the spool.
    before = tracking_spool.counts()["pending"]
    recorded = track_user_action_simple(user, action)
    assert isinstance(recorded, bool)
    assert recorded == (tracking_spool.counts()["pending"] == before + 1)


@FUZZ
@given(user=NASTY_TEXT, error_type=NASTY_TEXT, message=NASTY_TEXT)
def test_track_error_never_raises(tracking_spool, user, error_type, message):
    before = tracking_spool.counts()["pending"]
    recorded = track_error(user, error_type, message)
    assert isinstance(recorded, bool)
    assert recorded == (tracking_spool.counts()["pending"] == before + 1)


@tracked(Actions.GENERATE_QUESTION, capture=("question", "extra"))
def ask(question, extra=None):
    return "answer"


@tracked(Actions.EXECUTE_SQL, capture=("sql",))
def fail_with(sql, message):
    raise RuntimeError(message)


@FUZZ
@given(question=NASTY_TEXT, extra=NASTY_TEXT, message=NASTY_TEXT)
def test_tracked_calls_return_or_raise_only_their_own_outcome(tracking_spool, question, extra, message):
    assert ask(question, extra=extra) == "answer"
    try:
        fail_with(question, message)
    except RuntimeError as exc:
        assert exc.args == (message,)
    else:
        raise AssertionError("the original exception was swallowed")


def test_injection_strings_are_stored_verbatim_as_data(tracking_spool):
    evil = "x'); DROP TABLE events; --"
    assert track_user_action_simple(evil, evil)
    rows = get_tracker().spool.rows()
    assert rows[-1]["action"] == evil
    assert sqlite3.connect(tracking_spool.path).execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
