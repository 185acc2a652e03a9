"""The "Usage analytics" page: who uses the chatbot, for what, how fast, and how often it fails — admins only.

Register it in ``app.py`` with :func:`analytics_pages` (empty for anyone not in ``ADMIN_EMAILS``, so the page is
unreachable for them); the page checks again itself. Data: the warehouse when configured and reachable (plus the
pending spool rows for the headline numbers), otherwise the local spool, with a notice saying so. Each panel is one
function of ``ctg_app.tracking.analytics.dashboard`` over one board per render (one warehouse session at most), and
its result is cached for ``CACHE_TTL_S`` seconds per filter.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT.parent) not in sys.path:  # run as a page script from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT.parent))

import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

from ctg_app.settings import get_settings  # noqa: E402
from ctg_app.tracking.recording.identity import current_user  # noqa: E402

PAGE_PATH = Path(__file__).resolve()
DAY_CHOICES = (1, 7, 14, 30, 90)
ALL = "All"


def _daily(fig: go.Figure, days: int | None) -> go.Figure:
    """Day ticks (plotly would otherwise show hours when the data spans a single day); one per day for short windows."""
    fig.update_xaxes(type="date", tickformat="%b %d")
    if days is not None and days <= 14:
        fig.update_xaxes(dtick=86_400_000)
    return fig


def _readable(fig: go.Figure) -> go.Figure:
    """The legend in one row under the plot (on the right it covered the error-rate axis), and category labels
    (action names) tilted so they do not overlap on a phone."""
    if fig.layout.xaxis.type == "date":
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0, "title": None})
    else:  # tilted labels take the room under the plot: the legend goes above it, right-aligned
        fig.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1,
                                  "title": None})
        fig.update_xaxes(tickangle=-45, automargin=True)
    return fig


def _counts(fig: go.Figure, values: pd.Series) -> go.Figure:
    """Counts start at zero and, when small, tick in whole numbers."""
    fig.update_yaxes(rangemode="tozero")
    if len(values) and values.max() <= 10:
        fig.update_yaxes(dtick=1)
    return fig

def _ago(moment: str | None, now: datetime | None = None) -> str:
    """``3 min ago`` / ``2 h ago`` / ``4 d ago`` for an ISO time (a tile's value must fit a fifth of the page)."""
    if not moment:
        return "never"
    try:
        then = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    except ValueError:
        return str(moment)[:16]
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    seconds = max(0.0, ((now or datetime.now(timezone.utc)) - then).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"


def is_admin() -> bool:
    """True when the current user is one of ``ADMIN_EMAILS``."""
    admins = {email.strip().lower() for email in get_settings().admin_emails}
    return bool(admins) and current_user() in admins


def analytics_pages() -> list:
    """``[st.Page(...)]`` for admins, ``[]`` for everyone else: add to the app's ``st.navigation`` list."""
    if not is_admin():
        return []
    return [st.Page(str(PAGE_PATH), title="Usage analytics", icon="📊", url_path="analytics")]


def _filters(known_users: list[str], known_actions: list[str]) -> tuple[int, str | None, str | None]:
    cols = st.columns(3)
    days = cols[0].selectbox("Days", DAY_CHOICES, index=1, key="analytics_days",
                             help="Today plus this many previous days (UTC)")
    user = cols[1].selectbox("User", [ALL, *known_users], key="analytics_user")
    action = cols[2].selectbox("Action", [ALL, *known_actions], key="analytics_action")
    return int(days), (None if user == ALL else user), (None if action == ALL else action)


CACHE_TTL_S = 30  # panel results are reused this long per filter: a filter change or rerun costs no statements


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _probe(key: tuple, _board) -> tuple:
    """``(TableInfo | None, warehouse error | None)``: the central table probed once (one statement)."""
    info = _board.table_info()
    return info, _board.warehouse_error


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _choices(key: tuple, _board) -> tuple[list[str], list[str]]:
    from ctg_app.tracking.analytics.dashboard import filter_choices

    return filter_choices(_board)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _headline(key: tuple, days: int, user: str | None, _board):
    from ctg_app.tracking.analytics.dashboard import headline

    return headline(_board, days, user)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _report(key: tuple, name: str, days: int, user: str | None, action: str | None, _board,
            app_name: str | None = None):
    from ctg_app.tracking.analytics.dashboard import report

    return report(_board, name, days=days, user=user, action=action, app_name=app_name)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _table_health(key: tuple, rows: int | None, _board, _info):
    from ctg_app.tracking.analytics.dashboard import table_health

    return table_health(_board, _info)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _answer_events(key: tuple, days: int, user: str | None, _board):
    from ctg_app.tracking.analytics.dashboard import answer_events

    return answer_events(_board, days, user)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _parked(key: tuple, _board):
    from ctg_app.tracking.analytics.dashboard import parked

    return parked(_board)


def _park_panel(board) -> None:
    status = _parked(board.cache_key(), board)
    if status is None:
        st.caption("No park volume (TRACKING_PARK_VOLUME): on an ephemeral disk, events still pending when the app "
                   "stops are lost.")
        return
    segments = status.get("parked_segments") or []
    oldest = status.get("oldest_parked_age_s")
    cols = st.columns(3)
    cols[0].metric("Parked segments", len(segments))
    cols[1].metric("Oldest parked", "-" if oldest is None else f"{oldest / 60:.0f} min")
    cols[2].metric("Parked here", status.get("parked_local", 0))
    if status.get("volume_error"):
        st.warning(f"Park volume unavailable: {status['volume_error']}")
    elif status.get("last_park_error"):
        st.caption(f"Last park error ({status.get('last_park_error_at')}): {status['last_park_error']}")
    if segments:
        st.dataframe(pd.DataFrame(segments).rename(columns={"name": "segment", "age_s": "age (s)"}), hide_index=True)


def open_board(source: str = "auto"):
    """This render's :class:`~ctg_app.tracking.analytics.dashboard.Board` with the table probed (cached briefly):
    ``source`` is ``auto`` (the warehouse when it answers, else the spool), ``spool`` or ``warehouse``."""
    from ctg_app.tracking.analytics.dashboard import Board

    board = Board(get_settings(), source=source)
    info, error = _probe(board.cache_key(), board)
    if error:
        board.warehouse_error = error
        board.close()
    else:
        board.table_info(known=info)
    return board


def _health(board) -> None:
    from ctg_app.tracking.analytics.dashboard import spool_health
    from ctg_app.tracking.analytics.reports import WarehouseUnavailable

    settings = board.settings
    st.subheader("Tracker health")
    try:
        status = spool_health(board)
    except Exception as exc:  # noqa: BLE001 - show the problem instead of breaking the page
        st.error(f"The local spool cannot be read: {type(exc).__name__}: {exc}")
        return
    age = status.get("oldest_pending_age_s")
    cols = st.columns(5)
    cols[0].metric("Pending", status["pending"])
    cols[1].metric("Oldest pending", "-" if age is None else f"{age / 60:.0f} min")
    cols[2].metric("Dead letters", status["dead"])
    cols[3].metric("Dropped", status["dropped"])
    last = status.get("last_success_at")
    cols[4].metric("Last flush", _ago(last), help=f"{last} (UTC)" if last else "No flush has succeeded yet")
    if status.get("last_error"):
        st.caption(f"Last flush error ({status.get('last_error_at')}): {status['last_error']}")
    _park_panel(board)
    if not settings.warehouse_configured:
        st.caption("Databricks is not configured: events stay in the local spool (offline mode).")
        return
    if board.warehouse_error:
        st.caption(f"Central table not checked: {board.warehouse_error}")
        return
    try:
        table = _table_health(board.cache_key(), board.info.rows if board.info else None, board, board.info)
    except WarehouseUnavailable as exc:
        st.warning(f"Warehouse unreachable: {exc}")
        return
    if table.rows is None:
        st.caption(f"Central table {settings.tracking_table} does not exist yet (nothing delivered).")
        return
    text = f"Central table {settings.tracking_table}: {table.rows:,} rows"
    if table.size_bytes is not None:
        text += f", {table.size_bytes / 1e6:.1f} MB in {table.files} files (DESCRIBE DETAIL)"
    st.caption(text)


def render() -> None:
    """The page body: one board (at most one warehouse connection) per render, each panel cached per filter."""
    st.title("Usage analytics")
    if not is_admin():
        st.error("This page is only available to administrators (ADMIN_EMAILS).")
        st.stop()
    board = open_board()
    try:
        _render_panels(board)
    finally:
        board.close()


def _render_panels(board) -> None:
    if board.warehouse_error:
        st.warning(f"Warehouse unavailable ({board.warehouse_error}): showing the events still in the local spool "
                   f"(delivered events older than {board.settings.spool_retention_days} days may be missing).")
    key = (*board.cache_key(), board.source)
    known_users, known_actions = _choices(key, board)
    days, user, action = _filters(known_users, known_actions)
    stats = _headline(key, days, user, board)
    if stats.notice:
        st.warning(stats.notice)
    st.caption(f"Since {stats.since} (UTC) · source: {stats.source}")

    if stats.empty:
        st.info("No events yet in this window. Events appear here once people use the chatbot "
                "(every question, SQL run, download and error is tracked); try a longer window or another user.")
        _health(board)
        return

    cols = st.columns(5)
    cols[0].metric("Events", f"{stats.total_events:,}")
    cols[1].metric("Users", stats.unique_users)
    cols[2].metric("Active days", stats.active_days)
    cols[3].metric("Errors", stats.error_count)
    cols[4].metric("Error rate", f"{stats.error_count / stats.total_events:.1%}")

    def panel(name: str, app_name: str | None = None):
        return _report(key, name, days, user, action, board, app_name)

    dau = panel("daily_active_users")
    _pending_caption(stats, dau)
    left, right = st.columns(2)
    frame = dau.frame.sort_values("date")
    dau_chart = px.line(frame, x="date", y="active_users", markers=True, title="Daily active users",
                        labels={"date": "Day", "active_users": "Active users"})
    left.plotly_chart(_counts(_daily(dau_chart, days), frame["active_users"]), key="chart_dau")
    popular = panel("popular_actions").frame
    actions_chart = px.bar(popular, x="action", y="count", title="Actions",
                           labels={"action": "Action", "count": "Events"})
    right.plotly_chart(_readable(_counts(actions_chart, popular["count"])), key="chart_actions")

    left, right = st.columns(2)
    trend = panel("error_trend").frame
    fig = go.Figure()
    fig.add_bar(x=trend["date"], y=trend["errors"], name="errors")
    fig.add_scatter(x=trend["date"], y=trend["error_rate"], name="error rate", yaxis="y2", mode="lines+markers")
    fig.update_layout(title="Errors per day", yaxis={"title": "Errors"},
                      yaxis2={"overlaying": "y", "side": "right", "tickformat": ".0%", "title": "Error rate",
                              "rangemode": "tozero"})
    left.plotly_chart(_readable(_counts(_daily(fig, days), trend["errors"])), key="chart_errors")
    funnel = panel("funnel").frame
    right.plotly_chart(go.Figure(go.Funnel(y=funnel["action"], x=funnel["users"], textinfo="value+percent initial"))
                       .update_layout(title="Question → download funnel (users)"), key="chart_funnel")

    pct = panel("duration_percentiles").frame
    if not pct.empty:
        long = pct.melt(id_vars=["action"], value_vars=["p50_ms", "p95_ms"], var_name="percentile",
                        value_name="ms")
        long["percentile"] = long["percentile"].map({"p50_ms": "median", "p95_ms": "95th percentile"})
        st.plotly_chart(_readable(px.bar(long, x="action", y="ms", color="percentile", barmode="group",
                                         labels={"action": "Action", "ms": "Milliseconds"},
                                         title="Duration per action (ms)")), key="chart_durations")
    else:
        st.caption("No durations recorded in this window.")

    with st.expander("Tables"):
        st.dataframe(panel("error_rate").frame, hide_index=True)
        st.dataframe(panel("activity_per_user").frame, hide_index=True)
        st.dataframe(funnel, hide_index=True)
        st.dataframe(pd.DataFrame(list(stats.errors_by_type.items()), columns=["error", "count"]), hide_index=True)
    # on demand: its one statement would push a plain render past the page's budget of twelve
    if st.toggle("Answer quality (feedback, declines, edits)", key="analytics_answer_quality"):
        from ctg_app.ui.answer_quality import render_answer_quality

        render_answer_quality(_answer_events(key, days, user, board))
    # on demand too: each panel's statements run only while it is open
    if st.toggle("Engagement (sessions, active users, retention, session funnel)", key="analytics_engagement"):
        _engagement(panel, board, days)
    if st.toggle("Apps compared (every app in the central table)", key="analytics_apps"):
        _apps(panel)
    if st.toggle("Declined and 👎 questions (review, promote to training)", key="analytics_problems"):
        _problems(panel)
    _health(board)


def _pending_caption(stats, dau) -> None:
    """One statement about events still in the spool that agrees with the totals: they are in the tiles above (the
    headline merges them) and not yet in the charts (reports read the central table)."""
    from ctg_app.tracking.analytics.dashboard import headline_pending_note

    note = headline_pending_note(stats)
    if note:
        charts = "the charts below show delivered events only" if dau.source == "warehouse" \
            else "so do the charts below"
        st.caption(f"The Events count {note}; {charts}.")
    elif dau.notice and not stats.notice and not dau.pending:
        st.info(dau.notice)


def _app_choice(board) -> str | None:
    from ctg_app.tracking.analytics.reports import ALL_APPS

    own = board.settings.app_name
    choice = st.selectbox("App", [own, "All apps"], key="analytics_app",
                          help="The central table is shared: report on this app or on every app in it")
    return ALL_APPS if choice == "All apps" else None


def _engagement(panel, board, days: int) -> None:
    st.subheader("Engagement")
    app = _app_choice(board)
    sessions = panel("sessions", app).frame
    active = panel("active_users", app).frame
    cols = st.columns(4)
    total = int(sessions["sessions"].sum()) if not sessions.empty else 0
    cols[0].metric("Sessions", f"{total:,}")
    if total:
        avg = float((sessions["avg_duration_s"] * sessions["sessions"]).sum()) / total
        cols[1].metric("Avg session", f"{avg / 60:.1f} min")
        cols[2].metric("Questions / session", f"{int(sessions['questions'].sum()) / total:.2f}")
    else:
        cols[1].metric("Avg session", "-")
        cols[2].metric("Questions / session", "-")
    latest = active.iloc[-1] if not active.empty else None
    cols[3].metric("Stickiness (DAU/MAU)", "-" if latest is None else f"{latest['stickiness']:.0%}",
                   help="Today's active users over the users of the last 30 days")
    left, right = st.columns(2)
    if not active.empty:
        long = active.melt(id_vars=["date"], value_vars=["dau", "wau", "mau"], var_name="users", value_name="count")
        long["users"] = long["users"].map({"dau": "daily", "wau": "weekly", "mau": "monthly"})
        left.plotly_chart(_readable(_counts(_daily(px.line(long, x="date", y="count", color="users", markers=True,
                                                           labels={"date": "Day", "count": "Active users"},
                                                           title="Daily / weekly / monthly active users"), days),
                                            long["count"])), key="chart_active_users")
    new = panel("new_returning", app).frame
    if not new.empty:
        long = new.melt(id_vars=["date"], value_vars=["new_users", "returning_users"], var_name="users",
                        value_name="count")
        long["users"] = long["users"].map({"new_users": "new", "returning_users": "returning"})
        right.plotly_chart(_readable(_counts(_daily(px.bar(long, x="date", y="count", color="users",
                                                           labels={"date": "Day", "count": "Users"},
                                                           title="New and returning users"), days),
                                             long["count"])), key="chart_new_returning")
    if not sessions.empty:
        st.plotly_chart(_counts(_daily(px.bar(sessions, x="date", y="sessions", title="Sessions per day",
                                              hover_data=["avg_duration_s", "questions_per_session"],
                                              labels={"date": "Day", "sessions": "Sessions",
                                                      "avg_duration_s": "Average duration (s)",
                                                      "questions_per_session": "Questions per session"}), days),
                                sessions["sessions"]), key="chart_sessions")
    funnel = panel("session_funnel", app).frame
    left, right = st.columns(2)
    left.plotly_chart(go.Figure(go.Funnel(y=funnel["action"], x=funnel["sessions"], textinfo="value+percent initial"))
                      .update_layout(title="Ordered funnel per session"), key="chart_session_funnel")
    right.dataframe(funnel, hide_index=True, column_config={
        "conversion_from_previous": st.column_config.NumberColumn("From previous", format="percent"),
        "conversion_from_start": st.column_config.NumberColumn("From start", format="percent"),
        "p50_seconds_from_question": st.column_config.NumberColumn("Median s from question")})
    cohorts = panel("retention", app).frame
    st.markdown("**Weekly retention** (share of each cohort active n weeks after its first week)")
    if cohorts.empty:
        st.caption("No users in this window.")
    else:
        table = cohorts.pivot(index=["cohort_week", "cohort_users"], columns="weeks_since", values="retention")
        table.columns = [f"week {c}" for c in table.columns]
        st.dataframe(table.reset_index(), hide_index=True, column_config={
            c: st.column_config.NumberColumn(c, format="percent") for c in table.columns})


def _apps(panel) -> None:
    st.subheader("Apps compared")
    apps = panel("app_comparison").frame
    if apps.empty:
        st.caption("No events in this window.")
        return
    st.dataframe(apps, hide_index=True, column_config={
        "error_rate": st.column_config.NumberColumn("Error rate", format="percent")})


def _problems(panel) -> None:
    from ctg_app.chatbot.data.promote import PromotionError, promote_to_training

    st.subheader("Declined and 👎 questions")
    problems = panel("problem_questions").frame
    if problems.empty:
        st.caption("No declined or unhelpful answers in this window.")
        return
    st.dataframe(problems, hide_index=True)
    labels = [f"{r['kind']}: {r['question'] or '(no question text)'}" for r in problems.to_dict(orient="records")]
    index = st.selectbox("Review", range(len(labels)), format_func=lambda i: labels[i], key="analytics_review")
    with st.form("analytics_promote"):
        question = st.text_input("Question", value=problems.iloc[index]["question"] or "")
        sql = st.text_area("SQL that answers it (Databricks SQL over the training schema)", height=120)
        if st.form_submit_button("Promote to training", icon=":material/school:"):
            try:
                done = promote_to_training(question, sql)
            except PromotionError as exc:
                st.error(f"Not promoted: {exc}")
            else:
                st.success(f"Promoted to {done.path.name} ({done.examples} examples). The assistant learns it at "
                           "its next start.")


if __name__ == "__main__":  # Streamlit runs page scripts as __main__; importing analytics_pages must not render
    render()
