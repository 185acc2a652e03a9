"""The chat page: question → SQL → table → chart → summary, with editing, column choice and Excel download.

Streamlit reruns this script on every interaction, so the page keeps the current answer in ``st.session_state`` and
runs an operation only on user intent: a submitted question, a button click or a widget's ``on_change`` callback.
Rendering an existing answer — a rerun, a sidebar toggle, a page switch — records nothing.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pandas as pd
import streamlit as st

from ctg_app.chatbot import operations as ops
from ctg_app.chatbot.charts import can_chart
from ctg_app.chatbot.data_source import DataSourceConfigError
from ctg_app.chatbot.excel import XLSX_MIME, to_excel_bytes
from ctg_app.chatbot.llm import LlmConfigError
from ctg_app.chatbot.vanna_app import build_vanna
from ctg_app.settings import Settings, get_settings
from ctg_app.tracking import Actions, current_user, get_tracker, track_error

log = logging.getLogger(__name__)

TURN = "ctg_turn"            # the current answer (dict)
PENDING = "ctg_pending_question"
SUGGESTED = "ctg_suggested"
TURN_SEQ = "ctg_turn_seq"
CONFIG_ERROR_TRACKED = "ctg_config_error_tracked"

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
    parts = (settings.llm_provider, settings.llm_model, settings.data_source, str(settings.sample_db_path),
             settings.data_schema, settings.similarity_threshold, settings.azure_openai_endpoint, settings.ollama_host,
             *settings.secret_values())
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


@st.cache_resource(show_spinner="Loading the CTG assistant…")
def _vanna_for(fingerprint: str) -> Any:
    vn = build_vanna(get_settings())
    vn.cache_key = fingerprint
    return vn


def get_vanna() -> Any:
    """The trained Vanna object for the current settings (shared by all sessions)."""
    return _vanna_for(_fingerprint(get_settings()))


def friendly_message(exc: BaseException, operation: str) -> str:
    """A short message for the user; the classified error was already recorded by ``@tracked``."""
    if isinstance(exc, (LlmConfigError, DataSourceConfigError)):
        return str(exc)
    tracker = get_tracker()
    try:
        action = tracker.classify(exc, operation)
    except Exception:  # classification is best effort: fall back to a generic message
        action = Actions.APP_ERROR
    detail = f"{type(exc).__name__}: {tracker.redact(exc)}"
    # Spec: errors are logged to the console but shown to users only in debug mode; both texts are redacted.
    log.warning("%s during %s (%s)", action, operation, detail)
    message = FRIENDLY.get(action, FRIENDLY[Actions.APP_ERROR])
    if get_settings().debug_logging:
        message = f"{message}\n\nDebug: {detail}"
    return message


def _new_turn(question: str) -> dict[str, Any]:
    st.session_state[TURN_SEQ] = st.session_state.get(TURN_SEQ, 0) + 1
    turn: dict[str, Any] = {"id": st.session_state[TURN_SEQ], "question": question}
    st.session_state[TURN] = turn
    return turn


def _set_result(turn: dict[str, Any], sql: str, df: pd.DataFrame) -> None:
    turn.update(sql=sql, df=df, columns=list(df.columns), chart=None, summary=None, excel=None, result_seq=
                st.session_state.get(TURN_SEQ, 0) * 1000 + turn.get("edits", 0))


def _toggle(name: str) -> bool:
    return bool(st.session_state.get(f"keep_{name}", True))


def _persist_toggle(name: str) -> None:
    # widget state is dropped when another page runs; this copy survives page switches
    st.session_state[f"keep_{name}"] = bool(st.session_state.get(name, True))


# ----------------------------------------------------------------------------------------------- operations on intent
def ask(vn: Any, question: str) -> None:
    """Run the whole pipeline for a submitted question (each step records its one event)."""
    try:
        question = ops.submit_question(question)
    except ValueError:
        return
    turn = _new_turn(question)
    try:
        answer = ops.generate_sql(vn, question)
    except Exception as exc:
        turn["error"] = friendly_message(exc, Actions.SQL_QUERY)
        return
    turn["answer"] = answer
    if answer.declined:
        return
    try:
        df = ops.execute_sql(vn, answer.sql)
    except Exception as exc:
        turn.update(sql=answer.sql, error=friendly_message(exc, Actions.EXECUTE_SQL))
        return
    _set_result(turn, answer.sql, df)
    if _toggle("show_chart"):
        make_chart(turn)
    if _toggle("show_summary"):
        make_summary(vn, turn)
    turn["followups"] = _followups(vn, turn)


def make_chart(turn: dict[str, Any]) -> None:
    """Chart the current result when it has something to chart."""
    df = turn.get("df")
    if not can_chart(df):
        turn["chart_note"] = "This result has nothing to chart."
        return
    try:
        turn["chart"] = ops.generate_chart(df)
    except Exception as exc:
        turn["chart_note"] = friendly_message(exc, Actions.GENERATE_CHART)


def make_summary(vn: Any, turn: dict[str, Any]) -> None:
    """Summarise the current result."""
    try:
        turn["summary"] = ops.generate_summary(vn, turn["question"], turn["df"])
    except Exception as exc:
        turn["summary_note"] = friendly_message(exc, Actions.GENERATE_SUMMARY)


def _followups(vn: Any, turn: dict[str, Any]) -> list[str]:
    try:
        return vn.followups(turn["question"], turn["sql"], turn["df"])
    except Exception as exc:  # follow-ups are optional: record the failure, show none
        log.warning("follow-up questions failed: %s", type(exc).__name__)
        track_error(current_user(), Actions.LLM_ERROR, exc)
        return []


def _on_ask(question: str) -> None:
    st.session_state[PENDING] = question


def _on_suggest(vn: Any) -> None:
    try:
        st.session_state[SUGGESTED] = ops.suggest_questions(vn)
    except Exception as exc:
        st.session_state[SUGGESTED] = []
        log.warning("suggested questions failed: %s", type(exc).__name__)


def _on_columns(turn: dict[str, Any], key: str) -> None:
    columns = [c for c in st.session_state.get(key, []) if c in turn["df"].columns]
    turn["columns"] = ops.select_columns(columns)
    turn["excel"] = None


def _on_download(turn: dict[str, Any]) -> None:
    ops.record_download(len(turn["df"]), len(turn["columns"]))


def _on_edit(vn: Any, turn: dict[str, Any], key: str) -> None:
    sql = (st.session_state.get(key) or "").strip()
    turn.pop("edit_error", None)
    try:
        df = ops.run_edited_sql(vn, sql)
    except Exception as exc:
        turn["edit_error"] = friendly_message(exc, Actions.EDIT_SQL)
        return
    turn["edits"] = turn.get("edits", 0) + 1
    turn.pop("error", None)
    _set_result(turn, sql, df)
    turn["edited"] = True


# ----------------------------------------------------------------------------------------------- rendering
def render_sidebar() -> None:
    """The chat page's display toggles (changing them only shows or hides)."""
    st.sidebar.subheader("Display")
    for key, label in TOGGLES.items():
        st.sidebar.toggle(label, value=_toggle(key), key=key, on_change=_persist_toggle, args=(key,))


def _question_buttons(questions: list[str], prefix: str) -> None:
    for i, question in enumerate(questions):
        st.button(question, key=f"{prefix}_{i}", on_click=_on_ask, args=(question,))


def _render_result(vn: Any, turn: dict[str, Any]) -> None:
    tid = turn["result_seq"]
    df: pd.DataFrame = turn["df"]
    if _toggle("show_sql"):
        st.code(turn["sql"], language="sql")
    with st.expander("Edit SQL and run it again", expanded=bool(turn.get("edit_error"))):
        key = f"edit_sql_{tid}"
        st.text_area("SQL", value=turn["sql"], key=key, height=140)
        st.button("Run edited SQL", key=f"run_edit_{tid}", on_click=_on_edit, args=(vn, turn, key))
        if turn.get("edit_error"):
            st.error(turn["edit_error"])
    columns = [c for c in turn["columns"] if c in df.columns]
    if _toggle("show_table"):
        key = f"columns_{tid}"
        if key not in st.session_state:
            st.session_state[key] = columns
        st.multiselect("Columns to include", options=list(df.columns), key=key, on_change=_on_columns,
                       args=(turn, key))
        st.dataframe(df[columns], width="stretch", hide_index=True)
        st.caption(f"{len(df):,} rows")
    if turn.get("excel") is None:
        turn["excel"] = to_excel_bytes(df, columns)
    st.download_button("Download Excel", data=turn["excel"], file_name="ctg-results.xlsx", mime=XLSX_MIME,
                       key=f"download_{tid}", on_click=_on_download, args=(turn,), disabled=not columns)
    if _toggle("show_chart"):
        if turn.get("chart") is not None:
            st.plotly_chart(turn["chart"], width="stretch", key=f"chart_{tid}")
        elif turn.get("chart_note"):
            st.caption(turn["chart_note"])
        elif can_chart(df) and st.button("Create chart", key=f"make_chart_{tid}"):
            make_chart(turn)
            st.rerun()
    if _toggle("show_summary"):
        if turn.get("summary"):
            st.markdown(turn["summary"])
        elif turn.get("summary_note"):
            st.caption(turn["summary_note"])
        elif st.button("Summarise", key=f"make_summary_{tid}"):
            make_summary(vn, turn)
            st.rerun()
    if turn.get("followups"):
        st.markdown("**Follow-up questions**")
        _question_buttons(turn["followups"], f"followup_{tid}")


def render_turn(vn: Any, turn: dict[str, Any]) -> None:
    """Show the current question and its answer."""
    with st.chat_message("user"):
        st.markdown(turn["question"])
    with st.chat_message("assistant"):
        answer = turn.get("answer")
        if answer is not None and answer.declined:
            st.info(answer.message)
            _question_buttons(list(answer.nearest), f"nearest_{turn['id']}")
            return
        if turn.get("df") is not None:
            _render_result(vn, turn)
            return
        if turn.get("sql") and _toggle("show_sql"):
            st.code(turn["sql"], language="sql")
        if turn.get("error"):
            st.error(turn["error"])


def render() -> None:
    """The chat page."""
    st.title("CTG project-controlling assistant")
    render_sidebar()
    try:
        vn = get_vanna()
    except (LlmConfigError, DataSourceConfigError) as exc:
        st.error(f"The assistant is not configured correctly: {exc}")
        if not st.session_state.get(CONFIG_ERROR_TRACKED):
            st.session_state[CONFIG_ERROR_TRACKED] = True
            action = Actions.LLM_ERROR if isinstance(exc, LlmConfigError) else Actions.DATABASE_ERROR
            track_error(current_user(), action, exc)
        return
    question = st.chat_input("Ask a question about projects, budgets, costs, cost to go or hours")
    question = question or st.session_state.pop(PENDING, None)
    if question:
        ask(vn, question)

    st.button("Suggest questions", key="suggest", on_click=_on_suggest, args=(vn,))
    if st.session_state.get(SUGGESTED):
        _question_buttons(st.session_state[SUGGESTED], "suggested")
    turn = st.session_state.get(TURN)
    if turn is not None:
        render_turn(vn, turn)
    else:
        st.caption("Ask about project budgets, actual costs, cost to go, margins or hours — or pick a suggestion.")
