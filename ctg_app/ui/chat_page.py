"""The chat page: a conversation of questions and answers (interpretation, SQL, table, chart, summary, feedback).

Streamlit reruns this script on every interaction, so the whole conversation lives in ``st.session_state`` (see
:mod:`ctg_app.chatbot.conversation`) and this module only *renders* it; what runs on user intent lives in
:mod:`ctg_app.ui.chat_actions`. Rendering the history — a rerun, a sidebar toggle, a page switch — records nothing.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import streamlit as st

from ctg_app.chatbot.assistant import Assistant
from ctg_app.ui import chat_actions as act
from ctg_app.ui import operations as ops
from ctg_app.chatbot import conversation as conv
from ctg_app.chatbot.data.source import DataSourceConfigError
from ctg_app.chatbot.present.excel import XLSX_MIME, excel_file_name, to_excel_bytes
from ctg_app.chatbot.present.formatting import column_kind, display_frame, format_value, human_label, plural, pretty_sql
from ctg_app.chatbot.answer.providers import LlmConfigError
from ctg_app.ui.compat import code_kwargs, stretch
from ctg_app.ui.table import column_config
from ctg_app.tracking import Actions, current_user, track_error

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------- rendering
def render_sidebar() -> None:
    """The chat page's display toggles (changing them only shows or hides)."""
    st.sidebar.subheader("Display")
    for key, label in act.TOGGLES.items():
        st.sidebar.toggle(label, value=act.toggle(key), key=key, on_change=act.persist_toggle, args=(key,))


def _question_buttons(questions: list[str], prefix: str, follows: int | None = None) -> None:
    for i, question in enumerate(questions):
        st.button(question, key=f"{prefix}_{i}", on_click=act.on_ask, args=(question, follows))


def _render_table(turn: conv.Turn, df: pd.DataFrame, columns: list[str], tid: int) -> None:
    key = f"columns_{tid}"
    if key not in st.session_state:
        st.session_state[key] = columns
    st.multiselect("Columns to include", options=list(df.columns), key=key, on_change=act.on_columns,
                   args=(turn, key), format_func=human_label)
    if not columns:
        st.warning("No columns selected: choose at least one column above to see the table and download it.")
        return
    shown = df[columns]
    st.dataframe(display_frame(shown), hide_index=True, column_config=column_config(shown), **stretch(st.dataframe))
    st.caption(f"{plural(len(df), 'row')} · {plural(len(columns), 'column')}")


def _render_download(assistant: Assistant, turn: conv.Turn, df: pd.DataFrame, columns: list[str], tid: int) -> None:
    if columns and turn.excel is None:
        about = {"Question": turn.question or "(edited SQL)", "Answered as": turn.interpretation,
                 "SQL": turn.sql, "Data source": _describe_source(assistant),
                 "Created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        turn.excel = to_excel_bytes(df, columns, about=about)
    name = excel_file_name(turn.question + (" edited" if turn.kind == conv.EDIT else ""))
    st.download_button("Download Excel", data=turn.excel or b"", file_name=name, mime=XLSX_MIME,
                       key=f"download_{tid}", on_click=act.on_download, args=(turn,), disabled=not columns,
                       help=None if columns else "Choose at least one column to download.")


def _describe_source(assistant: Assistant) -> str:
    try:
        return assistant.describe_source()
    except Exception:  # the description is informative only
        return assistant.dialect


def _render_chart(turn: conv.Turn, df: pd.DataFrame, tid: int) -> None:
    if turn.chart is not None:
        st.plotly_chart(turn.chart, key=f"chart_{tid}", **stretch(st.plotly_chart))
        if turn.chart_plot_note:
            st.caption(turn.chart_plot_note)
    elif turn.chart_note:
        st.caption(turn.chart_note)
    elif act.chart_worthy(df):
        st.button("Create chart", key=f"make_chart_{tid}", on_click=act.on_chart, args=(turn.id,))


def _render_summary(turn: conv.Turn, tid: int) -> None:
    if turn.summary:
        st.markdown(turn.summary)
    elif turn.summary_note:
        st.caption(turn.summary_note)
    else:
        st.button("Summarise", key=f"make_summary_{tid}", on_click=act.on_summary, args=(turn.id,))


def _render_edit_box(turn: conv.Turn, sql: str, tid: int, expanded: bool) -> None:
    key = f"edit_sql_{tid}"
    # an editor holding the user's unsent edit stays open across reruns (a rerun would otherwise fold it away)
    edited = st.session_state.get(key) not in (None, sql)
    with st.expander("Edit SQL and run it again", expanded=expanded or edited):
        st.text_area("SQL", value=sql, key=key, height=160)
        st.button("Run edited SQL", key=f"run_edit_{tid}", on_click=act.on_edit, args=(turn.id, key))


def _render_result(assistant: Assistant, turn: conv.Turn) -> None:
    tid = turn.result_seq
    df: pd.DataFrame = turn.df
    columns = [c for c in turn.columns if c in df.columns]
    if df.attrs.get("capped"):
        cap = df.attrs.get("row_cap") or len(df)
        st.caption(f"Showing the first {int(cap):,} rows (result capped).")
    single = df.shape == (1, 1)
    if single:
        column = df.columns[0]
        st.metric(human_label(column), format_value(df.iat[0, 0], column_kind(column, df[column]), df[column]))
    elif df.empty:
        st.info("The query ran but returned no rows.")
    if act.toggle("show_summary") and not single:
        _render_summary(turn, tid)
    if act.toggle("show_chart") and not single:  # a single number's chart is the metric above
        _render_chart(turn, df, tid)
    if act.toggle("show_table"):
        if single:
            with st.expander("Table"):
                _render_table(turn, df, columns, tid)
        else:
            _render_table(turn, df, columns, tid)
    _render_download(assistant, turn, df, columns, tid)
    if act.toggle("show_sql"):
        st.code(pretty_sql(turn.sql, assistant.sql_dialect), language="sql", **code_kwargs())
    _render_edit_box(turn, turn.sql, tid, expanded=False)


def _render_feedback(turn: conv.Turn) -> None:
    tid, vote = turn.id, turn.feedback
    cols = st.columns([2.2, 1.1, 1.4, 3])
    cols[0].caption("Was this answer helpful?" if vote is None else
                    ("Thanks, glad it helped." if vote == "up" else "Thanks, sorry it missed."))
    cols[1].button("Helpful", key=f"feedback_up_{tid}", on_click=act.on_feedback, args=(turn, True),
                   icon=":material/thumb_up:", type="primary" if vote == "up" else "secondary")
    cols[2].button("Not helpful", key=f"feedback_down_{tid}", on_click=act.on_feedback, args=(turn, False),
                   icon=":material/thumb_down:", type="primary" if vote == "down" else "secondary")
    if vote == "down" and not turn.feedback_sent:
        with st.form(key=f"feedback_form_{tid}", border=True):
            reason_key, comment_key = f"feedback_reason_{tid}", f"feedback_comment_{tid}"
            st.selectbox("What was wrong? (optional)", options=list(ops.FEEDBACK_REASONS), index=None,
                         key=reason_key, placeholder="Choose a reason")
            st.text_input("Anything else? (optional)", key=comment_key, max_chars=ops.MAX_COMMENT)
            st.form_submit_button("Send", on_click=act.on_feedback_reason, args=(turn, reason_key, comment_key))


def _render_answer_header(turn: conv.Turn) -> None:
    answer = turn.answer
    interpretation = turn.interpretation
    confidence = str(getattr(answer, "confidence", "") or "")
    if interpretation:
        st.markdown(f"**Answered as:** {interpretation}" + (f"  \n:gray[Confidence: {confidence}]"
                                                            if confidence else ""))
    elif answer is not None and answer.message:
        st.caption(answer.message)


def _render_assistant(assistant: Assistant, turn: conv.Turn, latest: bool) -> None:
    answer = turn.answer
    if answer is not None and answer.declined:
        st.info(answer.message or "I cannot answer that question from the project-controlling data.")
        # the engine's alternatives are questions it can answer (the user's values filled in); the nearest trained
        # questions are the fallback for answers that carry none
        offers = list(getattr(answer, "alternatives", ()) or ()) or list(answer.nearest)
        if offers:
            st.caption("Questions I can answer:")
        _question_buttons(offers, f"nearest_{turn.id}")
        return
    if turn.kind == conv.QUESTION:
        _render_answer_header(turn)
        alternatives = list(getattr(answer, "alternatives", ()) or ())
        if alternatives and latest:
            st.caption("Did you mean:")
            _question_buttons(alternatives, f"didyoumean_{turn.id}")
    if turn.df is not None:
        _render_result(assistant, turn)
        _render_feedback(turn)
        if turn.followups and latest:
            st.markdown("**Follow-up questions**")
            _question_buttons(turn.followups, f"followup_{turn.id}", follows=turn.id)
        return
    if turn.error:
        st.error(turn.error)
    if turn.sql and turn.kind == conv.QUESTION and act.toggle("show_sql"):
        st.code(pretty_sql(turn.sql, assistant.sql_dialect), language="sql", **code_kwargs())
    if turn.kind == conv.EDIT:
        _render_edit_box(turn, turn.sql or "", turn.id, expanded=True)


def render_turn(assistant: Assistant, turn: conv.Turn, latest: bool = True) -> None:
    """Show one turn of the conversation: the user's message and the assistant's answer."""
    if turn.kind == conv.SUGGESTIONS:
        with st.chat_message("assistant"):
            st.markdown("Here are some questions you could ask:")
            _question_buttons(turn.suggestions, f"suggested_{turn.id}")
        return
    with st.chat_message("user"):
        if turn.kind == conv.EDIT:
            st.markdown("**Edited SQL**")
            st.code(turn.sql or "", language="sql", **code_kwargs())
        else:
            st.text(turn.question)
    with st.chat_message("assistant"):
        _render_assistant(assistant, turn, latest)


def render_welcome(assistant: Assistant) -> None:
    """The first screen: what the assistant does and example questions to start with."""
    try:
        questions = conv.welcome_questions(st.session_state, assistant.questions())
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
    st.title("CTG project-controlling assistant")
    render_sidebar()
    try:
        assistant = act.get_assistant()
    except (LlmConfigError, DataSourceConfigError) as exc:
        st.error(f"The assistant is not configured correctly: {exc}")
        if not st.session_state.get(act.CONFIG_ERROR_TRACKED):
            st.session_state[act.CONFIG_ERROR_TRACKED] = True
            action = Actions.LLM_ERROR if isinstance(exc, LlmConfigError) else Actions.DATABASE_ERROR
            track_error(current_user(), action, exc)
        return
    typed = st.chat_input("Ask about projects, budgets, costs or hours")  # short enough for a 390 px phone
    with st.spinner("Working on it…"):
        act.run_pending(assistant, typed)
    turns = conv.history(st.session_state)
    if not turns:
        render_welcome(assistant)
    latest = max((t.id for t in turns if t.kind == conv.QUESTION), default=None)
    for turn in turns:
        render_turn(assistant, turn, latest=turn.id == latest)
    cols = st.columns([1, 1, 3])
    cols[0].button("Suggest questions", key="suggest", on_click=act.on_suggest, icon=":material/lightbulb:")
    if turns:
        cols[1].button("New conversation", key="new_conversation", on_click=act.on_new_conversation,
                    icon=":material/restart_alt:")
