"""The chat page: a conversation of questions and answers (interpretation, SQL, table, chart, summary, feedback).

Streamlit reruns this script on every interaction, so the whole conversation lives in ``st.session_state`` (see
:mod:`ctg_app.chatbot.conversation`) and an operation runs only on user intent: a submitted question, a button click
or a widget's ``on_change`` callback. Button callbacks only *note* what the user asked for; the script then runs it
once. Rendering the history — a rerun, a sidebar toggle, a page switch — records nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

import pandas as pd
import streamlit as st

from ctg_app.chatbot import conversation as conv
from ctg_app.chatbot import operations as ops
from ctg_app.chatbot.charts import can_chart, plan_chart
from ctg_app.chatbot.data_source import DataSourceConfigError
from ctg_app.chatbot.excel import XLSX_MIME, excel_file_name, to_excel_bytes
from ctg_app.chatbot.formatting import column_config, column_kind, display_frame, format_value, human_label, plural, \
    pretty_sql
from ctg_app.chatbot.llm import LlmConfigError
from ctg_app.chatbot.ui_compat import code_kwargs, stretch
from ctg_app.chatbot.vanna_app import build_vanna
from ctg_app.settings import Settings, get_settings
from ctg_app.tracking import Actions, current_user, get_tracker, track_error

log = logging.getLogger(__name__)

PENDING = "ctg_pending"  # what a button asked for: {"question": str, "follows": turn id | None} or {"edit": ...}
CONFIG_ERROR_TRACKED = "ctg_config_error_tracked"
MAX_DB_MESSAGE = 300

TOGGLES = {"show_sql": "Show SQL", "show_table": "Show table", "show_chart": "Show chart", "show_summary": "Show summary"}

FRIENDLY = {
    Actions.LLM_ERROR: "The language model could not answer just now. Please try again in a moment.",
    Actions.SQL_ERROR: "That query could not be run: it is not a valid read-only query for this database.",
    Actions.DATABASE_ERROR: "The database could not be reached. Please try again in a moment.",
    Actions.CHART_ERROR: "No chart could be drawn for this result.",
    Actions.APP_ERROR: "Something went wrong. Please try again.",
}

_CSS = """<style>
/* the signed-in e-mail: wrap at any character instead of running off the sidebar */
section[data-testid="stSidebar"] [data-testid="stText"], section[data-testid="stSidebar"] .stText
  { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.85rem; }
</style>"""


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


def _classify(exc: BaseException, operation: str) -> tuple[str, str]:
    tracker = get_tracker()
    try:
        action = tracker.classify(exc, operation)
    except Exception:  # classification is best effort: fall back to a generic message
        action = Actions.APP_ERROR
    return action, f"{type(exc).__name__}: {tracker.redact(exc)}"


def friendly_message(exc: BaseException, operation: str) -> str:
    """A short message for the user; the classified error was already recorded by ``@tracked``."""
    if isinstance(exc, (LlmConfigError, DataSourceConfigError)):
        return str(exc)
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
    return f"{message}\n\nThe database said: `{reason.replace('`', chr(39))}`" if reason else message


def _toggle(name: str) -> bool:
    return bool(st.session_state.get(f"keep_{name}", True))


def _persist_toggle(name: str) -> None:
    # widget state is dropped when another page runs; this copy survives page switches
    st.session_state[f"keep_{name}"] = bool(st.session_state.get(name, True))


def _interpretation(turn: conv.Turn) -> str:
    return str(getattr(turn.get("answer"), "interpretation", "") or "")


def _set_result(turn: conv.Turn, sql: str, df: pd.DataFrame) -> None:
    turn.update(sql=sql, df=df, columns=list(df.columns), chart=None, summary=None, excel=None,
                result_seq=turn["id"])


def _after_result(vn: Any, turn: conv.Turn) -> None:
    if _toggle("show_chart") and _chart_worthy(turn["df"]):
        make_chart(turn)
    if _toggle("show_summary"):
        make_summary(vn, turn)


def _chart_worthy(df: pd.DataFrame | None) -> bool:
    return can_chart(df)


# ----------------------------------------------------------------------------------------------- operations on intent
def ask(vn: Any, question: str, follows: conv.Turn | None = None) -> None:
    """Run the whole pipeline for a submitted question (each step records its one event).

    ``follows`` is the turn a follow-up belongs to; its answer is passed on when the model supports context."""
    if not (question or "").strip():
        return  # whitespace only: nothing was asked, nothing is recorded
    try:
        question = ops.submit_question(question)
    except ValueError:
        return
    state = st.session_state
    previous = follows.get("answer") if follows is not None and ops.accepts_previous(vn) else None
    turn = conv.add_turn(state, conv.QUESTION, question, follows=follows["id"] if follows else None)
    try:
        answer = ops.generate_sql(vn, question, previous=previous) if previous is not None \
            else ops.generate_sql(vn, question)
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
    _after_result(vn, turn)
    turn["followups"] = _followups(vn, turn)


def run_edit(vn: Any, origin: conv.Turn | None, sql: str) -> None:
    """Run SQL the user edited as its own turn ("Edited SQL"), with chart and summary under the same toggles."""
    sql = (sql or "").strip()
    if origin is not None:  # the edited text now lives in its own turn; the origin's editor shows its own SQL again
        st.session_state.pop(f"edit_sql_{origin['id']}", None)
    question = (origin or {}).get("question", "")
    turn = conv.add_turn(st.session_state, conv.EDIT, question, sql=sql, origin=(origin or {}).get("id"))
    try:
        df = ops.run_edited_sql(vn, sql)
    except Exception as exc:
        turn["error"] = edit_error_message(exc)
        return
    _set_result(turn, sql, df)
    turn["edited"] = True
    _after_result(vn, turn)


def make_chart(turn: conv.Turn) -> None:
    """Chart the turn's result when it has something to chart."""
    df = turn.get("df")
    if not can_chart(df):
        turn["chart_note"] = "This result has nothing to chart."
        return
    title = "Edited SQL" if turn.get("kind") == conv.EDIT else (_interpretation(turn) or turn["question"])
    try:
        turn["chart"] = ops.generate_chart(df, title=title)
        turn["chart_plot_note"] = plan_chart(df).note
    except Exception as exc:
        turn["chart_note"] = friendly_message(exc, Actions.GENERATE_CHART)


def make_summary(vn: Any, turn: conv.Turn) -> None:
    """Summarise the turn's whole result."""
    try:
        turn["summary"] = ops.generate_summary(vn, turn["question"], turn["df"], _interpretation(turn))
    except Exception as exc:
        turn["summary_note"] = friendly_message(exc, Actions.GENERATE_SUMMARY)


def _followups(vn: Any, turn: conv.Turn) -> list[str]:
    try:
        return vn.followups(turn["question"], turn["sql"], turn["df"])
    except Exception as exc:  # follow-ups are optional: record the failure, show none
        log.warning("follow-up questions failed: %s", type(exc).__name__)
        track_error(current_user(), Actions.LLM_ERROR, exc)
        return []


def suggest(vn: Any) -> None:
    """The "Suggest questions" click: five trained questions, kept as a turn of the conversation."""
    try:
        questions = ops.suggest_questions(vn)
    except Exception as exc:
        log.warning("suggested questions failed: %s", type(exc).__name__)
        return
    conv.add_turn(st.session_state, conv.SUGGESTIONS, "", suggestions=questions)


def _on_ask(question: str, follows: int | None = None) -> None:
    st.session_state[PENDING] = {"question": question, "follows": follows}


def _on_edit(turn_id: int, key: str) -> None:
    st.session_state[PENDING] = {"edit": st.session_state.get(key) or "", "origin": turn_id}


def _on_suggest() -> None:
    st.session_state[PENDING] = {"suggest": True}


def _on_new_conversation() -> None:
    st.session_state.pop(PENDING, None)
    conv.clear(st.session_state)


def _on_columns(turn: conv.Turn, key: str) -> None:
    columns = [c for c in st.session_state.get(key, []) if c in turn["df"].columns]
    turn["columns"] = ops.select_columns(columns)
    turn["excel"] = None


def _on_download(turn: conv.Turn) -> None:
    ops.record_download(len(turn["df"]), len(turn["columns"]))


def _on_feedback(turn: conv.Turn, helpful: bool) -> None:
    turn["feedback"] = "up" if helpful else "down"
    turn.pop("feedback_sent", None)
    _record_feedback(turn, helpful)


def _on_feedback_reason(turn: conv.Turn, reason_key: str, comment_key: str) -> None:
    turn["feedback_sent"] = True
    _record_feedback(turn, False, reason=st.session_state.get(reason_key) or "",
                     comment=st.session_state.get(comment_key) or "")


def _record_feedback(turn: conv.Turn, helpful: bool, reason: str = "", comment: str = "") -> None:
    answer = turn.get("answer")
    try:
        ops.record_feedback(helpful, turn=turn["id"], intent=getattr(answer, "intent", None),
                            interpretation=_interpretation(turn), confidence=getattr(answer, "confidence", "") or "",
                            edited=turn.get("kind") == conv.EDIT, reason=reason, comment=comment)
    except Exception as exc:  # feedback is a nicety: never break the page for it
        log.warning("recording feedback failed: %s", type(exc).__name__)


def run_pending(vn: Any, typed: str | None) -> None:
    """Run what the user asked for in this script run: a typed question, or what a button noted."""
    state = st.session_state
    pending = state.pop(PENDING, None)
    if typed is not None:
        ask(vn, typed, follows=conv.last_answer(state))
    elif pending and "question" in pending:
        follows = conv.find(state, pending["follows"]) if pending.get("follows") else None
        ask(vn, pending["question"], follows=follows)
    elif pending and "edit" in pending:
        run_edit(vn, conv.find(state, pending["origin"]), pending["edit"])
    elif pending and pending.get("suggest"):
        suggest(vn)


# ----------------------------------------------------------------------------------------------- rendering
def render_sidebar() -> None:
    """The chat page's display toggles (changing them only shows or hides)."""
    st.sidebar.subheader("Display")
    for key, label in TOGGLES.items():
        st.sidebar.toggle(label, value=_toggle(key), key=key, on_change=_persist_toggle, args=(key,))


def _question_buttons(questions: list[str], prefix: str, follows: int | None = None) -> None:
    for i, question in enumerate(questions):
        st.button(question, key=f"{prefix}_{i}", on_click=_on_ask, args=(question, follows))


def _render_table(turn: conv.Turn, df: pd.DataFrame, columns: list[str], tid: int) -> None:
    key = f"columns_{tid}"
    if key not in st.session_state:
        st.session_state[key] = columns
    st.multiselect("Columns to include", options=list(df.columns), key=key, on_change=_on_columns,
                   args=(turn, key), format_func=human_label)
    if not columns:
        st.warning("No columns selected: choose at least one column above to see the table and download it.")
        return
    shown = df[columns]
    st.dataframe(display_frame(shown), hide_index=True, column_config=column_config(shown), **stretch(st.dataframe))
    st.caption(f"{plural(len(df), 'row')} · {plural(len(columns), 'column')}")


def _render_download(vn: Any, turn: conv.Turn, df: pd.DataFrame, columns: list[str], tid: int) -> None:
    if columns and turn.get("excel") is None:
        about = {"Question": turn["question"] or "(edited SQL)", "Answered as": _interpretation(turn),
                 "SQL": turn["sql"], "Data source": _describe_source(vn),
                 "Created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        turn["excel"] = to_excel_bytes(df, columns, about=about)
    name = excel_file_name(turn["question"] + (" edited" if turn.get("kind") == conv.EDIT else ""))
    st.download_button("Download Excel", data=turn.get("excel") or b"", file_name=name, mime=XLSX_MIME,
                       key=f"download_{tid}", on_click=_on_download, args=(turn,), disabled=not columns,
                       help=None if columns else "Choose at least one column to download.")


def _describe_source(vn: Any) -> str:
    try:
        return str(vn.data_source.describe())
    except Exception:  # the description is informative only
        return str(getattr(vn, "dialect", ""))


def _render_chart(turn: conv.Turn, df: pd.DataFrame, tid: int) -> None:
    if turn.get("chart") is not None:
        st.plotly_chart(turn["chart"], key=f"chart_{tid}", **stretch(st.plotly_chart))
        if turn.get("chart_plot_note"):
            st.caption(turn["chart_plot_note"])
    elif turn.get("chart_note"):
        st.caption(turn["chart_note"])
    elif _chart_worthy(df) and st.button("Create chart", key=f"make_chart_{tid}"):
        make_chart(turn)
        st.rerun()


def _render_summary(vn: Any, turn: conv.Turn, tid: int) -> None:
    if turn.get("summary"):
        st.markdown(turn["summary"])
    elif turn.get("summary_note"):
        st.caption(turn["summary_note"])
    elif st.button("Summarise", key=f"make_summary_{tid}"):
        make_summary(vn, turn)
        st.rerun()


def _render_edit_box(turn: conv.Turn, sql: str, tid: int, expanded: bool) -> None:
    with st.expander("Edit SQL and run it again", expanded=expanded):
        key = f"edit_sql_{tid}"
        st.text_area("SQL", value=sql, key=key, height=160)
        st.button("Run edited SQL", key=f"run_edit_{tid}", on_click=_on_edit, args=(turn["id"], key))


def _render_result(vn: Any, turn: conv.Turn) -> None:
    tid = turn["result_seq"]
    df: pd.DataFrame = turn["df"]
    columns = [c for c in turn["columns"] if c in df.columns]
    if df.attrs.get("capped"):
        cap = df.attrs.get("row_cap") or len(df)
        st.caption(f"Showing the first {int(cap):,} rows (result capped).")
    single = df.shape == (1, 1)
    if single:
        column = df.columns[0]
        st.metric(human_label(column), format_value(df.iat[0, 0], column_kind(column, df[column]), df[column]))
    elif df.empty:
        st.info("The query ran but returned no rows.")
    if _toggle("show_summary") and not single:
        _render_summary(vn, turn, tid)
    if _toggle("show_chart") and not single:  # a single number's chart is the metric above
        _render_chart(turn, df, tid)
    if _toggle("show_table"):
        if single:
            with st.expander("Table"):
                _render_table(turn, df, columns, tid)
        else:
            _render_table(turn, df, columns, tid)
    _render_download(vn, turn, df, columns, tid)
    if _toggle("show_sql"):
        st.code(pretty_sql(turn["sql"], getattr(vn, "sql_dialect", None)), language="sql", **code_kwargs())
    _render_edit_box(turn, turn["sql"], tid, expanded=False)


def _render_feedback(turn: conv.Turn) -> None:
    tid, vote = turn["id"], turn.get("feedback")
    cols = st.columns([2.2, 1.1, 1.4, 3])
    cols[0].caption("Was this answer helpful?" if vote is None else
                    ("Thanks, glad it helped." if vote == "up" else "Thanks, sorry it missed."))
    cols[1].button("Helpful", key=f"feedback_up_{tid}", on_click=_on_feedback, args=(turn, True),
                   icon=":material/thumb_up:", type="primary" if vote == "up" else "secondary")
    cols[2].button("Not helpful", key=f"feedback_down_{tid}", on_click=_on_feedback, args=(turn, False),
                   icon=":material/thumb_down:", type="primary" if vote == "down" else "secondary")
    if vote == "down" and not turn.get("feedback_sent"):
        with st.form(key=f"feedback_form_{tid}", border=True):
            reason_key, comment_key = f"feedback_reason_{tid}", f"feedback_comment_{tid}"
            st.selectbox("What was wrong? (optional)", options=list(ops.FEEDBACK_REASONS), index=None,
                         key=reason_key, placeholder="Choose a reason")
            st.text_input("Anything else? (optional)", key=comment_key, max_chars=ops.MAX_COMMENT)
            st.form_submit_button("Send", on_click=_on_feedback_reason, args=(turn, reason_key, comment_key))


def _render_answer_header(turn: conv.Turn) -> None:
    answer = turn.get("answer")
    interpretation = _interpretation(turn)
    confidence = str(getattr(answer, "confidence", "") or "")
    if interpretation:
        st.markdown(f"**Answered as:** {interpretation}" + (f"  \n:gray[Confidence: {confidence}]"
                                                            if confidence else ""))
    elif answer is not None and answer.message:
        st.caption(answer.message)


def _render_assistant(vn: Any, turn: conv.Turn, latest: bool) -> None:
    answer = turn.get("answer")
    if answer is not None and answer.declined:
        st.info(answer.message or "I cannot answer that question from the project-controlling data.")
        reason = getattr(answer, "decline_reason", "")
        if reason:
            st.caption(reason)
        _question_buttons(list(answer.nearest), f"nearest_{turn['id']}")
        return
    if turn.get("kind") == conv.QUESTION:
        _render_answer_header(turn)
        alternatives = list(getattr(answer, "alternatives", ()) or ())
        if alternatives and latest:
            st.caption("Did you mean:")
            _question_buttons(alternatives, f"didyoumean_{turn['id']}")
    if turn.get("df") is not None:
        _render_result(vn, turn)
        _render_feedback(turn)
        if turn.get("followups") and latest:
            st.markdown("**Follow-up questions**")
            _question_buttons(turn["followups"], f"followup_{turn['id']}", follows=turn["id"])
        return
    if turn.get("error"):
        st.error(turn["error"])
    if turn.get("sql") and turn.get("kind") == conv.QUESTION and _toggle("show_sql"):
        st.code(pretty_sql(turn["sql"], getattr(vn, "sql_dialect", None)), language="sql", **code_kwargs())
    if turn.get("kind") == conv.EDIT:
        _render_edit_box(turn, turn["sql"], turn["id"], expanded=True)


def render_turn(vn: Any, turn: conv.Turn, latest: bool = True) -> None:
    """Show one turn of the conversation: the user's message and the assistant's answer."""
    if turn.get("kind") == conv.SUGGESTIONS:
        with st.chat_message("assistant"):
            st.markdown("Here are some questions you could ask:")
            _question_buttons(turn.get("suggestions", []), f"suggested_{turn['id']}")
        return
    with st.chat_message("user"):
        if turn.get("kind") == conv.EDIT:
            st.markdown("**Edited SQL**")
            st.code(turn["sql"], language="sql", **code_kwargs())
        else:
            st.text(turn["question"])
    with st.chat_message("assistant"):
        _render_assistant(vn, turn, latest)


def render_welcome(vn: Any) -> None:
    """The first screen: what the assistant does and example questions to start with."""
    try:
        questions = conv.welcome_questions(st.session_state, [q for q in vn.generate_questions() if q])
    except Exception as exc:  # examples are optional
        log.warning("welcome questions failed: %s", type(exc).__name__)
        questions = []
    with st.chat_message("assistant"):
        st.markdown("Hi! I answer questions about **projects, budgets, actual costs, cost to go, margins and hours**, "
                    "with the SQL, a table you can download, a chart and a short summary. Try one of these, or type "
                    "your own question below:")
        _question_buttons(questions, "welcome")


def render() -> None:
    """The chat page."""
    st.markdown(_CSS, unsafe_allow_html=True)
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
    typed = st.chat_input("Ask a question about projects, budgets, costs, cost to go or hours")
    with st.spinner("Working on it…"):
        run_pending(vn, typed)
    turns = conv.history(st.session_state)
    if not turns:
        render_welcome(vn)
    latest = max((t["id"] for t in turns if t.get("kind") == conv.QUESTION), default=None)
    for turn in turns:
        render_turn(vn, turn, latest=turn["id"] == latest)
    cols = st.columns([1, 1, 3])
    cols[0].button("Suggest questions", key="suggest", on_click=_on_suggest, icon=":material/lightbulb:")
    if turns:
        cols[1].button("New conversation", key="new_conversation", on_click=_on_new_conversation,
                    icon=":material/restart_alt:")
