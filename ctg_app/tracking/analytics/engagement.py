"""Engagement reports: sessions, active users (DAU / WAU / MAU, stickiness), weekly retention cohorts, new and
returning users, the ordered per-session funnel and the cross-app comparison.

Each is written once in Databricks SQL and registered in :data:`ctg_app.tracking.analytics.reports.REPORTS`, so
it runs on the warehouse and (translated by sqlglot) on the spool, reaches ``usage-report --report NAME`` and the
usage page. The SQL reads small per-(session | day, user) rows; what needs an order or a rolling window (durations,
rolling distinct users, first week ever, steps in order) is computed in Python, identically for both engines.

Definitions:

- a **session** is one ``session_id`` (one browser session of the app); its duration is last event − first event;
  events without a session id (CLI, background) are not sessions;
- **WAU / MAU** of a day: distinct users in the 7 / 30 days ending that day; **stickiness** = DAU / MAU;
- **retention**: users grouped by the ISO week (Monday) of their first event ever; a cohort's week *n* counts the
  cohort's users active *n* weeks later;
- **new** users of a day had their first event ever that day; **returning** users were seen on an earlier day;
- **session funnel**: within a session, in time order, ``generate_question`` → ``sql_query`` → ``execute_sql`` →
  ``download_results`` or ``generate_chart``; a session reaches step *k* when it did steps 1..k in that order; the
  time to a step is measured from the session's first question.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

import pandas as pd

from ctg_app.tracking.analytics.reports import (
    ReportSpec,
    _as_naive_utc,
    _register,
    _with_error_rate,
    nearest_rank,
    sql_literal,
)
from ctg_app.tracking.recording.actions import Actions

#: The ordered funnel's steps; the last step is reached by either of its actions
SESSION_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (Actions.GENERATE_QUESTION, (Actions.GENERATE_QUESTION,)),
    (Actions.SQL_QUERY, (Actions.SQL_QUERY,)),
    (Actions.EXECUTE_SQL, (Actions.EXECUTE_SQL,)),
    (f"{Actions.DOWNLOAD_RESULTS} / {Actions.GENERATE_CHART}", (Actions.DOWNLOAD_RESULTS, Actions.GENERATE_CHART)),
)
_STEP_OF = {action: i for i, (_, actions) in enumerate(SESSION_STEPS) for action in actions}
_IN_SESSION_STEPS = ", ".join(sql_literal(a) for a in _STEP_OF)


def _days(since: date | None, today: date, seen: Iterable[date]) -> list[date]:
    """Every day from ``since`` (or the first day seen) to today (or the last day seen)."""
    seen = list(seen)
    if not seen and since is None:
        return []
    first = since if since is not None else min(seen)
    last = max([today, *seen]) if seen else today
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


# ----- sessions ------------------------------------------------------------------------------------------------------


def _sessions_per_day(raw: pd.DataFrame, since: date | None, today: date) -> pd.DataFrame:
    columns = ["date", "sessions", "avg_duration_s", "p50_duration_s", "questions", "questions_per_session"]
    if raw.empty:
        return pd.DataFrame(columns=columns)
    frame = raw.assign(duration_s=[(e - s).total_seconds() for s, e in zip(raw["started"], raw["ended"])],
                       date=[t.date() for t in raw["started"]])
    records = []
    for day, group in frame.groupby("date", sort=True):
        durations = sorted(group["duration_s"])
        sessions, questions = len(group), int(group["questions"].sum())
        records.append({
            "date": day, "sessions": sessions,
            "avg_duration_s": round(sum(durations) / sessions, 1),
            "p50_duration_s": round(float(nearest_rank(durations, 50)), 1),
            "questions": questions, "questions_per_session": round(questions / sessions, 2),
        })
    return pd.DataFrame.from_records(records, columns=columns)


_register(ReportSpec(
    name="sessions",
    title="Sessions per day",
    description=("Sessions (one session_id each) by the day they started: count, average and median duration "
                 "(first to last event), questions asked and questions per session."),
    sql="""SELECT session_id, MIN(timestamp) AS started, MAX(timestamp) AS ended,
       SUM(CASE WHEN action = 'generate_question' THEN 1 ELSE 0 END) AS questions
FROM {events} WHERE {where} AND session_id IS NOT NULL
GROUP BY session_id""",
    default_days=30,
    columns=("date", "sessions", "avg_duration_s", "p50_duration_s", "questions", "questions_per_session"),
    finish_window=_sessions_per_day,
    timestamp_columns=("started", "ended"),
))


# ----- active users --------------------------------------------------------------------------------------------------


def _active_users(raw: pd.DataFrame, since: date | None, today: date) -> pd.DataFrame:
    columns = ["date", "dau", "wau", "mau", "stickiness"]
    users_on: defaultdict[date, set[str]] = defaultdict(set)
    for day, user in zip(raw["date"], raw["user"]):
        users_on[day].add(user)
    records = []
    for day in _days(since, today, users_on):
        week = set().union(*(users_on.get(day - timedelta(days=k), set()) for k in range(7)))
        month = set().union(*(users_on.get(day - timedelta(days=k), set()) for k in range(30)))
        dau = len(users_on.get(day, ()))
        records.append({"date": day, "dau": dau, "wau": len(week), "mau": len(month),
                        "stickiness": round(dau / len(month), 4) if month else 0.0})
    return pd.DataFrame.from_records(records, columns=columns)


_USER_DAYS = """SELECT DATE(timestamp) AS date, user FROM {events} WHERE {where}
GROUP BY DATE(timestamp), user"""

_register(ReportSpec(
    name="active_users",
    title="Daily, weekly and monthly active users",
    description=("Per UTC day: DAU, WAU (distinct users in the 7 days ending that day), MAU (30 days) and "
                 "stickiness = DAU / MAU."),
    sql=_USER_DAYS,
    default_days=30,
    columns=("date", "dau", "wau", "mau", "stickiness"),
    lookback_days=29,
    finish_window=_active_users,
))


# ----- retention and new / returning users ---------------------------------------------------------------------------


def _first_days(raw: pd.DataFrame) -> dict[str, date]:
    first: dict[str, date] = {}
    for day, user in zip(raw["date"], raw["user"]):
        if user not in first or day < first[user]:
            first[user] = day
    return first


def _retention(raw: pd.DataFrame, since: date | None, today: date) -> pd.DataFrame:
    columns = ["cohort_week", "weeks_since", "cohort_users", "active_users", "retention"]
    first = _first_days(raw)
    active: defaultdict[tuple[date, int], set[str]] = defaultdict(set)
    for day, user in zip(raw["date"], raw["user"]):
        cohort = _monday(first[user])
        active[(cohort, (_monday(day) - cohort).days // 7)].add(user)
    sizes: defaultdict[date, int] = defaultdict(int)
    for user, day in first.items():
        sizes[_monday(day)] += 1
    start = _monday(since) if since is not None else None
    records = []
    for cohort in sorted(sizes):
        if start is not None and cohort < start:
            continue
        for weeks in range((_monday(today) - cohort).days // 7 + 1):
            users = len(active.get((cohort, weeks), ()))
            records.append({"cohort_week": cohort, "weeks_since": weeks, "cohort_users": sizes[cohort],
                            "active_users": users, "retention": round(users / sizes[cohort], 4)})
    return pd.DataFrame.from_records(records, columns=columns)


_register(ReportSpec(
    name="retention",
    title="Weekly retention cohorts",
    description=("Users grouped by the week (Monday, UTC) of their first event ever; for each later week, how many "
                 "of them were active and the share of the cohort."),
    sql=_USER_DAYS,
    default_days=56,
    columns=("cohort_week", "weeks_since", "cohort_users", "active_users", "retention"),
    lookback_days=None,
    finish_window=_retention,
))


def _new_returning(raw: pd.DataFrame, since: date | None, today: date) -> pd.DataFrame:
    columns = ["date", "active_users", "new_users", "returning_users"]
    first = _first_days(raw)
    users_on: defaultdict[date, set[str]] = defaultdict(set)
    for day, user in zip(raw["date"], raw["user"]):
        users_on[day].add(user)
    records = []
    for day in _days(since, today, users_on):
        users = users_on.get(day, set())
        new = sum(1 for u in users if first[u] == day)
        records.append({"date": day, "active_users": len(users), "new_users": new, "returning_users": len(users) - new})
    return pd.DataFrame.from_records(records, columns=columns)


_register(ReportSpec(
    name="new_returning",
    title="New and returning users",
    description=("Per UTC day: active users, new users (first event ever that day) and returning users (seen on an "
                 "earlier day)."),
    sql=_USER_DAYS,
    default_days=30,
    columns=("date", "active_users", "new_users", "returning_users"),
    lookback_days=None,
    finish_window=_new_returning,
))


# ----- the ordered per-session funnel --------------------------------------------------------------------------------


def _session_funnel(rows: Iterable[tuple]) -> pd.DataFrame:
    """``(session_id, timestamp, action)`` rows → sessions reaching each step in order, and the median seconds from
    the session's first question to the step."""
    per_session: defaultdict[str, list[tuple]] = defaultdict(list)
    for session_id, timestamp, action in rows:
        per_session[session_id].append((_as_naive_utc(timestamp), _STEP_OF[action]))
    reached = [0] * len(SESSION_STEPS)
    seconds: list[list[float]] = [[] for _ in SESSION_STEPS]
    for events in per_session.values():
        events.sort()  # time order; a tie goes to the earlier step
        step, start = 0, None
        for moment, index in events:
            if index != step:
                continue
            if step == 0:
                start = moment
            reached[step] += 1
            seconds[step].append((moment - start).total_seconds())
            step += 1
            if step == len(SESSION_STEPS):
                break
    records = []
    for i, (label, _) in enumerate(SESSION_STEPS):
        times = sorted(seconds[i])
        records.append({
            "step": i + 1, "action": label, "sessions": reached[i],
            "conversion_from_previous": round(reached[i] / reached[i - 1], 4) if i and reached[i - 1] else None,
            "conversion_from_start": round(reached[i] / reached[0], 4) if reached[0] else None,
            "p50_seconds_from_question": round(float(nearest_rank(times, 50)), 1) if times else None,
        })
    return pd.DataFrame.from_records(records)


_register(ReportSpec(
    name="session_funnel",
    title="Ordered funnel per session",
    description=("Sessions that went generate_question → sql_query → execute_sql → download_results or "
                 "generate_chart in that order, with conversion rates and the median time from the first question."),
    sql=f"""SELECT session_id, timestamp, action FROM {{events}}
WHERE {{where}} AND session_id IS NOT NULL AND action IN ({_IN_SESSION_STEPS})""",
    default_days=7,
    columns=("step", "action", "sessions", "conversion_from_previous", "conversion_from_start",
             "p50_seconds_from_question"),
    reduce_rows=_session_funnel,
))


# ----- the cross-app comparison --------------------------------------------------------------------------------------


_register(ReportSpec(
    name="app_comparison",
    title="Apps compared",
    description=("Every app in the central table (unless one is asked for): events, users, sessions, questions, "
                 "errors and error rate."),
    sql="""SELECT app_name, COUNT(*) AS events, COUNT(DISTINCT user) AS users,
       COUNT(DISTINCT session_id) AS sessions,
       SUM(CASE WHEN action = 'generate_question' THEN 1 ELSE 0 END) AS questions,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors
FROM {events} WHERE {where}
GROUP BY app_name
ORDER BY events DESC, app_name""",
    default_days=30,
    columns=("app_name", "events", "users", "sessions", "questions", "errors", "error_rate"),
    finish=_with_error_rate,
    all_apps_by_default=True,
))
