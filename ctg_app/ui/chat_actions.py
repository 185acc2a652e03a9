"""What the chat does on user intent: ask a question, run edited SQL, chart, summarise, suggest, record feedback.

Button and widget callbacks only *note* what the user asked for (``PENDING``: an :class:`Ask`, :class:`Edit`,
:class:`Suggest`, :class:`Chart` or :class:`Summary` request) or record a one-click event (feedback, columns,
download); the page script then calls :func:`run_pending` once per run, before it renders. Nothing here renders,
so rendering the conversation again can never run an operation or record an event. The page itself is :mod:`ctg_app.ui.chat_page`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
import logging
import pandas as pd
import streamlit as st

from ctg_app.chatbot import conversation as conv
from ctg_app.chatbot.answer.providers import LlmConfigError
from ctg_app.chatbot.assistant import Assistant, build_assistant
from ctg_app.chatbot.data.source import DataSourceConfigError, QueryTimeout
from ctg_app.chatbot.present.charts import can_chart, plan_chart
from ctg_app.ui import operations as ops
from ctg_app.ui.warehouse_status import start_timeout_message, warehouse_start_status
from ctg_app.settings import Settings, get_settings
from ctg_app.tracking import Actions, SqlValidationError, current_user, get_tracker, track_error

log = logging.getLogger(__name__)

PENDING = "ctg_pending"  # the Request a button or widget noted, run once by run_pending
CONFIG_ERROR_TRACKED = "ctg_config_error_tracked"
MAX_DB_MESSAGE = 300



@dataclass(frozen=True)
class Ask:
    """Answer ``question`` (a follow-up of turn ``follows`` when given)."""

    question: str
    follows: int | None = None


@dataclass(frozen=True)
class Edit:
    """Run ``sql`` the user edited, as a new turn after turn ``origin``."""

    sql: str
    origin: int | None = None


@dataclass(frozen=True)
class Suggest:
    """Show a few trained questions."""


@dataclass(frozen=True)
class Chart:
    """Chart the result of turn ``turn``."""

    turn: int


@dataclass(frozen=True)
class Summary:
    """Summarise the result of turn ``turn``."""

    turn: int


Request = Ask | Edit | Suggest | Chart | Summary

TOGGLES = {"show_sql": "Show SQL", "show_table": "Show table", "show_chart": "Show chart", "show_summary": "Show summary"}

FRIENDLY = {
    Actions.LLM_ERROR: "The language model could not answer just now. Please try again in a moment.",
    Actions.SQL_ERROR: "That query could not be run: it is not a valid read-only query for this database.",
    Actions.DATABASE_ERROR: "The database could not be reached. Please try again in a moment.",
    Actions.CHART_ERROR: "No chart could be drawn for this result.",
    Actions.APP_ERROR: "Something went wrong. Please try again.",
}



# ----------------------------------------------------------------------------------------------- building blocks
def _fingerprint(settings: Settings) -> str:
    # every setting (secrets included, only ever hashed): a change in secrets.toml rebuilds the assistant
    return hashlib.sha256(repr(dataclasses.astuple(settings)).encode()).hexdigest()[:16]


@st.cache_resource(show_spinner="Loading the CTG assistant…")
def _assistant_for(fingerprint: str) -> Assistant:
    return build_assistant(get_settings(), cache_key=fingerprint)


def get_assistant() -> Assistant:
    """The trained assistant for the current settings (shared by all sessions)."""
    return _assistant_for(_fingerprint(get_settings()))


def _classify(exc: BaseException, operation: str) -> tuple[str, str]:
    tracker = get_tracker()
    try:
        action = tracker.classify(exc, operation)
    except Exception:  # classification is best effort: fall back to a generic message
        action = Actions.APP_ERROR
    return action, f"{type(exc).__name__}: {tracker.redact(exc)}"


def _plain_reason(exc: BaseException) -> str | None:
    """Messages that say what happened better than the generic text: a configuration problem, a warehouse that did
    not start in time, a query stopped by the chat's time limit (SQLite's, or the warehouse's ``STATEMENT_TIMEOUT``
    as its error condition says: the warehouse verdict's facts, not the message's wording)."""
    from ctg_app.warehouse.errors import classify_error

    if isinstance(exc, (LlmConfigError, DataSourceConfigError)):
        return str(exc)
    started = start_timeout_message(exc)
    if started:
        return started
    if isinstance(exc, QueryTimeout) or classify_error(exc).is_statement_timeout:
        return (f"The query ran longer than {get_settings().chat_query_timeout_s:g} s and was stopped. "
                "Narrow it down (a filter, a shorter period, fewer joins) and try again.")
    return None


def friendly_message(exc: BaseException, operation: str) -> str:
    """A short message for the user; the classified error was already recorded by ``@tracked``."""
    plain = _plain_reason(exc)
    if plain:
        return plain
    action, detail = _classify(exc, operation)
    # Spec: errors are logged to the console but shown to users only in debug mode; both texts are redacted.
    log.warning("%s during %s (%s)", action, operation, detail)
    message = FRIENDLY.get(action, FRIENDLY[Actions.APP_ERROR])
    if get_settings().debug_logging:
        message = f"{message}\n\nDebug: {detail}"
    return message


def edit_error_message(exc: BaseException) -> str:
    """For SQL the user wrote: the friendly message plus the database's own reason (redacted, bounded), which is
    what they need to fix a misspelt column. Connection failures keep the generic text (their details are ours)."""
    message = friendly_message(exc, Actions.EDIT_SQL)
    action, _ = _classify(exc, Actions.EDIT_SQL)
    if action != Actions.SQL_ERROR or get_settings().debug_logging:
        return message
    reason = get_tracker().redact(exc).strip()
    if len(reason) > MAX_DB_MESSAGE:
        reason = reason[: MAX_DB_MESSAGE - 1] + "…"
    if not reason:
        return message
    # the app's own read-only check explains itself; anything else is the database's (or warehouse's) message
    source = "Why" if isinstance(exc, SqlValidationError) else "The database said"
    return f"{message}\n\n{source}: `{reason.replace('`', chr(39))}`"


def toggle(name: str) -> bool:
    return bool(st.session_state.get(f"keep_{name}", True))


def persist_toggle(name: str) -> None:
    # widget state is dropped when another page runs; this copy survives page switches
    st.session_state[f"keep_{name}"] = bool(st.session_state.get(name, True))


def _after_result(assistant: Assistant, turn: conv.Turn) -> None:
    if toggle("show_chart") and chart_worthy(turn.df):
        make_chart(assistant, turn)
    if toggle("show_summary"):
        make_summary(assistant, turn)


def chart_worthy(df: pd.DataFrame | None) -> bool:
    return can_chart(df)


# ----------------------------------------------------------------------------------------------- operations on intent
def ask(assistant: Assistant, question: str, follows: conv.Turn | None = None) -> None:
    """Run the whole pipeline for a submitted question (each step records its one event).

    ``follows`` is the turn a follow-up belongs to; its answer is passed on as the context of the question."""
    if not (question or "").strip():
        return  # whitespace only: nothing was asked, nothing is recorded
    try:
        question = ops.submit_question(question)
    except ValueError:
        return
    state = st.session_state
    previous = follows.answer if follows is not None else None
    turn = conv.add_turn(state, conv.QUESTION, question, follows=follows.id if follows else None)
    try:
        answer = ops.generate_sql(assistant, question, previous=previous)
    except Exception as exc:
        turn.error = friendly_message(exc, Actions.SQL_QUERY)
        return
    turn.answer = answer
    if answer.declined:
        return
    try:
        with warehouse_start_status():
            df = ops.execute_sql(assistant, answer.sql)
    except Exception as exc:
        turn.sql, turn.error = answer.sql, friendly_message(exc, Actions.EXECUTE_SQL)
        return
    turn.set_result(answer.sql, df)
    _after_result(assistant, turn)
    turn.followups = _followups(assistant, turn)


def run_edit(assistant: Assistant, origin: conv.Turn | None, sql: str) -> None:
    """Run SQL the user edited as its own turn ("Edited SQL"), with chart and summary under the same toggles."""
    sql = (sql or "").strip()
    if origin is not None:  # the edited text now lives in its own turn; the origin's editor shows its own SQL again
        st.session_state.pop(f"edit_sql_{origin.id}", None)
    question = origin.question if origin is not None else ""
    turn = conv.add_turn(st.session_state, conv.EDIT, question, sql=sql,
                         origin=origin.id if origin is not None else None)
    try:
        with warehouse_start_status():
            df = ops.run_edited_sql(assistant, sql)
    except Exception as exc:
        turn.error = edit_error_message(exc)
        return
    turn.set_result(sql, df)
    turn.edited = True
    _after_result(assistant, turn)


def make_chart(assistant: Assistant, turn: conv.Turn) -> None:
    """Chart the turn's result when it has something to chart."""
    df = turn.df
    if not can_chart(df):
        turn.chart_note = "This result has nothing to chart."
        return
    title = "Edited SQL" if turn.kind == conv.EDIT else (turn.interpretation or turn.question)
    try:
        turn.chart = ops.generate_chart(assistant, df, title=title)
        turn.chart_plot_note = plan_chart(df).note
    except Exception as exc:
        turn.chart_note = friendly_message(exc, Actions.GENERATE_CHART)


def make_summary(assistant: Assistant, turn: conv.Turn) -> None:
    """Summarise the turn's whole result."""
    try:
        turn.summary = ops.generate_summary(assistant, turn.question, turn.df, turn.interpretation)
    except Exception as exc:
        turn.summary_note = friendly_message(exc, Actions.GENERATE_SUMMARY)


def _followups(assistant: Assistant, turn: conv.Turn) -> list[str]:
    try:
        return assistant.followups(turn.question, turn.sql, turn.df)
    except Exception as exc:  # follow-ups are optional: record the failure, show none
        log.warning("follow-up questions failed: %s", type(exc).__name__)
        track_error(current_user(), Actions.LLM_ERROR, exc)
        return []


def suggest(assistant: Assistant) -> None:
    """The "Suggest questions" click: five trained questions, kept as a turn of the conversation."""
    try:
        questions = ops.suggest_questions(assistant)
    except Exception as exc:
        log.warning("suggested questions failed: %s", type(exc).__name__)
        return
    conv.add_turn(st.session_state, conv.SUGGESTIONS, "", suggestions=questions)


def on_ask(question: str, follows: int | None = None) -> None:
    st.session_state[PENDING] = Ask(question, follows)


def on_edit(turn_id: int, key: str) -> None:
    st.session_state[PENDING] = Edit(st.session_state.get(key) or "", turn_id)


def on_suggest() -> None:
    st.session_state[PENDING] = Suggest()


def on_chart(turn_id: int) -> None:
    st.session_state[PENDING] = Chart(turn_id)


def on_summary(turn_id: int) -> None:
    st.session_state[PENDING] = Summary(turn_id)


def on_new_conversation() -> None:
    st.session_state.pop(PENDING, None)
    conv.clear(st.session_state)


def on_columns(turn: conv.Turn, key: str) -> None:
    columns = [c for c in st.session_state.get(key, []) if c in turn.df.columns]
    turn.columns = ops.select_columns(columns)
    turn.excel = None


def on_download(turn: conv.Turn) -> None:
    ops.record_download(len(turn.df), len(turn.columns))


def on_feedback(turn: conv.Turn, helpful: bool) -> None:
    turn.feedback = "up" if helpful else "down"
    turn.feedback_sent = False
    _record_feedback(turn, helpful)


def on_feedback_reason(turn: conv.Turn, reason_key: str, comment_key: str) -> None:
    turn.feedback_sent = True
    _record_feedback(turn, False, reason=st.session_state.get(reason_key) or "",
                     comment=st.session_state.get(comment_key) or "")


def _record_feedback(turn: conv.Turn, helpful: bool, reason: str = "", comment: str = "") -> None:
    answer = turn.answer
    try:
        ops.record_feedback(helpful, turn=turn.id, intent=getattr(answer, "intent", None),
                            interpretation=turn.interpretation, confidence=getattr(answer, "confidence", "") or "",
                            edited=turn.kind == conv.EDIT, reason=reason, comment=comment)
    except Exception as exc:  # feedback is a nicety: never break the page for it
        log.warning("recording feedback failed: %s", type(exc).__name__)


def run_pending(assistant: Assistant, typed: str | None) -> None:
    """Run what the user asked for in this script run: a typed question, or the request a button noted.

    Every intent goes this one way: a callback notes a :data:`Request`, the next script run carries it out here
    (before the conversation is rendered), and the render only shows what is in the turns."""
    state = st.session_state
    pending = state.pop(PENDING, None)
    if typed is not None:
        ask(assistant, typed, follows=conv.last_answer(state))
        return
    match pending:
        case Ask(question, follows):
            ask(assistant, question, follows=conv.find(state, follows) if follows else None)
        case Edit(sql, origin):
            run_edit(assistant, conv.find(state, origin), sql)
        case Suggest():
            suggest(assistant)
        case Chart(turn_id):
            turn = conv.find(state, turn_id)
            if turn is not None and turn.df is not None and turn.chart is None:
                make_chart(assistant, turn)
        case Summary(turn_id):
            turn = conv.find(state, turn_id)
            if turn is not None and turn.df is not None and not turn.summary:
                make_summary(assistant, turn)
