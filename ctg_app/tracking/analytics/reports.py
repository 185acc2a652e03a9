"""Named usage reports that give the same answer on the Databricks warehouse and on the local SQLite spool.

Every report is written **once**, in Databricks SQL, against a logical relation ``{events}`` with the central table's
columns (``timestamp, app_name, user, action, event_id, operation, status, error_type, error_message, duration_ms,
session_id, details``). :func:`to_sqlite` translates it with sqlglot (``read="databricks", write="sqlite"``) plus two
small adjustments that keep the answer identical and let SQLite use the spool's report index:

- ``DATE(timestamp)`` becomes ``substr(timestamp, 1, 10)`` (the spool stores UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``;
  the expression is exactly the one indexed by the spool's ``idx_events_report``);
- ``x LIKE 'literal'`` becomes ``x GLOB '…'``: Databricks' LIKE is case-sensitive, SQLite's is not.

Time windows are computed in Python, in UTC, and passed as parameters (never ``CURRENT_DATE`` inside SQL), so both
engines and freezegun agree. A window of ``days=N`` starts at midnight UTC N days before today and has no upper
bound — the spec's ``timestamp >= CURRENT_DATE - INTERVAL N DAY``. ``days=None`` means all time.

Query shape: each report first aggregates by a prefix of ``(day, user, action, ...)`` — the order of the spool's report
index, so SQLite streams the index without a sort — then aggregates that much smaller result. Percentiles are computed in Python by
nearest rank over the fetched durations, identically for both engines.

The spec's four example queries are kept verbatim in :data:`ctg_app.tracking.analytics.spec_sql.SPEC_QUERIES`; ``tests/analytics`` proves they return the
same rows as :func:`run_report` on the same data.

    from ctg_app.tracking.analytics.reports import run_report
    result = run_report("popular_actions", days=7)          # warehouse when configured and reachable, else the spool
    result.frame                                            # a pandas DataFrame
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from ctg_app.settings import SPEC_APP_NAME, SPEC_TABLE, Settings, get_settings
from ctg_app.tracking.recording.actions import Actions
from ctg_app.tracking.analytics.spec_sql import SPEC_QUERIES
from ctg_app.tracking.recording.event import TABLE_COLUMNS
from ctg_app.tracking.recording.spool import TABLE as SPOOL_TABLE
from ctg_app.tracking.recording.spool import Spool

log = logging.getLogger(__name__)

FUNNEL_STEPS = (Actions.GENERATE_QUESTION, Actions.SQL_QUERY, Actions.EXECUTE_SQL, Actions.DOWNLOAD_RESULTS)
SQL_EDITING_ACTIONS = (Actions.SQL_QUERY, Actions.EDIT_SQL, Actions.EXECUTE_SQL)

SOURCE_WAREHOUSE = "warehouse"
SOURCE_SPOOL = "spool"
SOURCE_AUTO = "auto"

#: ``app_name=ALL_APPS``: a report over every app in the central table (no ``app_name`` filter)
ALL_APPS = "*"

# ----- the spec's example queries, verbatim (ctg_app.tracking.analytics.spec_sql) ------------------------------------------


def spec_query(name: str, table: str = SPEC_TABLE, app_name: str = SPEC_APP_NAME) -> str:
    """The spec's example query ``name``, verbatim except for the table and app name when those differ."""
    return SPEC_QUERIES[name].replace(SPEC_TABLE, table).replace(f"'{SPEC_APP_NAME}'", _sql_string(app_name))


def _sql_string(value: str) -> str:
    return sql_literal(value)


def sql_literal(value: str, dialect: str = "databricks") -> str:
    """``value`` as a string literal of ``dialect`` (sqlglot's quoting: Databricks escapes ``'`` and ``\\`` with a
    backslash, where ``''`` would be two adjacent literals)."""
    return exp.Literal.string(value).sql(dialect=dialect)


# ----- windows -----------------------------------------------------------------------------------------------------


def utc_today(now: datetime | None = None) -> date:
    """Today's date in UTC (``datetime.now`` so freezegun controls it)."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc)
    return now.date()


def window_start(days: int | None, now: datetime | None = None) -> date | None:
    """First day of a ``days`` window: ``CURRENT_DATE - INTERVAL days DAY`` in UTC (None: all time)."""
    if days is None:
        return None
    if int(days) < 0:
        raise ValueError("days must be >= 0")
    return utc_today(now) - timedelta(days=int(days))


# ----- report definitions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportSpec:
    """One named report: its Databricks SQL (``{events}`` and ``{where}`` placeholders), default window, and the
    Python step that turns the fetched rows into the final frame."""

    name: str
    title: str
    description: str
    sql: str
    default_days: int | None
    columns: tuple[str, ...]
    finish: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    #: Streams the fetched rows (both engines) into the raw frame, instead of building a frame of every row first
    reduce_rows: Callable[[Iterable[tuple]], pd.DataFrame] | None = None
    extra_where: str = ""
    spec_query: str | None = None  # the SPEC_QUERIES entry this report equals
    #: Days of history read before the window (e.g. 29 for a monthly active count on the window's first day);
    #: None reads all history (e.g. a user's first day ever, for cohorts and new users). The SQL reads the longer
    #: span; :attr:`finish_window` keeps the window.
    lookback_days: int | None = 0
    #: Like ``finish`` but also given the window: ``(raw, since, today)`` (since None: all time)
    finish_window: Callable[[pd.DataFrame, date | None, date], pd.DataFrame] | None = None
    #: Read every app's rows unless an ``app_name`` is asked for (the cross-app comparison)
    all_apps_by_default: bool = False
    #: Extra raw columns that hold timestamps (normalised to naive UTC on both engines)
    timestamp_columns: tuple[str, ...] = ()


@dataclass
class ReportResult:
    """A report's answer. ``frame`` is the table; ``source`` says which engine answered (``warehouse``/``spool``);
    ``notice`` explains a fallback (warehouse unreachable → spool) or an empty answer."""

    name: str
    frame: pd.DataFrame
    source: str
    days: int | None
    since: date | None
    user: str | None = None
    action: str | None = None
    notice: str | None = None
    seconds: float = 0.0
    app_name: str | None = None
    pending: int = 0  # spool rows not delivered yet (warehouse answers only): not in this frame

    @property
    def empty(self) -> bool:
        """True when the report has no rows."""
        return self.frame.empty

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "report": self.name, "source": self.source, "days": self.days,
            "since": self.since.isoformat() if self.since else None, "user": self.user, "action": self.action,
            "notice": self.notice, "rows": _json_records(self.frame),
        }


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict(orient="records"):
        clean = {}
        for key, value in record.items():
            if isinstance(value, (pd.Timestamp, datetime, date)):
                value = value.isoformat()
            elif isinstance(value, float) and math.isnan(value):
                value = None
            elif hasattr(value, "item"):
                value = value.item()
            clean[key] = value
        out.append(clean)
    return out


def _finish_funnel(raw: pd.DataFrame) -> pd.DataFrame:
    row = raw.iloc[0] if not raw.empty else None
    records = []
    first = None
    previous = None
    for i, action in enumerate(FUNNEL_STEPS, start=1):
        users = int(row[f"users_{i}"] or 0) if row is not None else 0
        events = int(row[f"events_{i}"] or 0) if row is not None else 0
        if first is None:
            first = users
        records.append({
            "step": i,
            "action": action,
            "users": users,
            "events": events,
            "conversion_from_previous": round(users / previous, 4) if previous else None,
            "conversion_from_start": round(users / first, 4) if first else None,
        })
        previous = users
    return pd.DataFrame.from_records(records)


def nearest_rank(sorted_values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * n - 1e-9))
    return sorted_values[rank - 1]


def _percentiles_of_rows(rows: Iterable[tuple]) -> pd.DataFrame:
    """``(action, duration_ms)`` rows → the percentile table, without a frame of every row: the rows stream into one
    list per action (measured faster than any column-splitting alternative), each sorted with numpy and read by
    nearest rank (the same code for both engines, so the answers are identical)."""
    import numpy as np

    per_action: defaultdict[str, list[float]] = defaultdict(list)
    for action, duration in rows:
        per_action[action].append(np.nan if duration is None else duration)
    records = []
    for action, durations in per_action.items():
        values = np.sort(np.array(durations, dtype=np.float64), kind="stable")
        values = values[~np.isnan(values)]  # NULL / NaN: not a duration
        if len(values):
            records.append({
                "action": action,
                "count": int(len(values)),
                "p50_ms": round(float(nearest_rank(values, 50)), 3),
                "p95_ms": round(float(nearest_rank(values, 95)), 3),
                "max_ms": round(float(values[-1]), 3),
            })
    frame = pd.DataFrame.from_records(records, columns=["action", "count", "p50_ms", "p95_ms", "max_ms"])
    return frame.sort_values(["count", "action"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _with_error_rate(raw: pd.DataFrame) -> pd.DataFrame:
    """Adds ``error_rate`` = errors / events (0 where there were no events), rounded to 4 places."""
    frame = raw.copy()
    frame["error_rate"] = [round(e / n, 4) if n else 0.0 for e, n in zip(frame["errors"], frame["events"])]
    return frame


_IN_STEPS = ", ".join(sql_literal(a) for a in FUNNEL_STEPS)
_IN_EDITING = ", ".join(sql_literal(a) for a in SQL_EDITING_ACTIONS)

REPORTS: dict[str, ReportSpec] = {}


def _register(spec: ReportSpec) -> ReportSpec:
    REPORTS[spec.name] = spec
    return spec


_register(ReportSpec(
    name="daily_active_users",
    title="Daily active users",
    description="Distinct users per UTC day, newest first (spec example query 1; all time by default).",
    sql="""SELECT date, COUNT(*) AS active_users
FROM (SELECT DISTINCT DATE(timestamp) AS date, user FROM {events} WHERE {where}) AS d
GROUP BY date
ORDER BY date DESC""",
    default_days=None,
    columns=("date", "active_users"),
    spec_query="daily_active_users",
))

#: Events per action, counted along the report index's (day, user, action) prefix so SQLite streams it without a sort.
#: Shared by the spec's example queries 2-4, which differ only in their filter and the count's name.
_COUNT_PER_ACTION = """SELECT action, SUM(n) AS {count}
FROM (SELECT DATE(timestamp) AS d, user, action, COUNT(*) AS n FROM {{events}} WHERE {{where}}
      GROUP BY DATE(timestamp), user, action) AS g
GROUP BY action
ORDER BY {count} DESC, action"""

_register(ReportSpec(
    name="popular_actions",
    title="Most popular actions",
    description="Events per action (spec example query 2; last 7 days).",
    sql=_COUNT_PER_ACTION.format(count="count"),
    default_days=7,
    columns=("action", "count"),
    spec_query="popular_actions",
))

_register(ReportSpec(
    name="sql_editing",
    title="SQL editing patterns",
    description="Generated, edited and executed SQL (spec example query 3; last 7 days).",
    sql=_COUNT_PER_ACTION.format(count="count"),
    default_days=7,
    columns=("action", "count"),
    extra_where=f"action IN ({_IN_EDITING})",
    spec_query="sql_editing",
))

_register(ReportSpec(
    name="error_analysis",
    title="Error analysis",
    description="Error actions by count (spec example query 4; last day).",
    sql=_COUNT_PER_ACTION.format(count="error_count"),
    default_days=1,
    columns=("action", "error_count"),
    extra_where="action LIKE '%_error%'",
    spec_query="error_analysis",
))

_register(ReportSpec(
    name="funnel",
    title="Question → download funnel",
    description=("Users who reached each step of generate_question → sql_query → execute_sql → download_results "
                 "in the window (a user reaches step k when they did steps 1..k), with conversion rates."),
    sql=f"""SELECT
  SUM(s1) AS users_1, SUM(s1 * s2) AS users_2, SUM(s1 * s2 * s3) AS users_3, SUM(s1 * s2 * s3 * s4) AS users_4,
  SUM(e1) AS events_1, SUM(e2) AS events_2, SUM(e3) AS events_3, SUM(e4) AS events_4
FROM (
  SELECT user,
    MAX(CASE WHEN action = '{FUNNEL_STEPS[0]}' THEN 1 ELSE 0 END) AS s1,
    MAX(CASE WHEN action = '{FUNNEL_STEPS[1]}' THEN 1 ELSE 0 END) AS s2,
    MAX(CASE WHEN action = '{FUNNEL_STEPS[2]}' THEN 1 ELSE 0 END) AS s3,
    MAX(CASE WHEN action = '{FUNNEL_STEPS[3]}' THEN 1 ELSE 0 END) AS s4,
    SUM(CASE WHEN action = '{FUNNEL_STEPS[0]}' THEN n ELSE 0 END) AS e1,
    SUM(CASE WHEN action = '{FUNNEL_STEPS[1]}' THEN n ELSE 0 END) AS e2,
    SUM(CASE WHEN action = '{FUNNEL_STEPS[2]}' THEN n ELSE 0 END) AS e3,
    SUM(CASE WHEN action = '{FUNNEL_STEPS[3]}' THEN n ELSE 0 END) AS e4
  FROM (SELECT DATE(timestamp) AS d, user, action, COUNT(*) AS n FROM {{events}} WHERE {{where}}
        GROUP BY DATE(timestamp), user, action) AS g
  GROUP BY user
) AS u""",
    default_days=7,
    columns=("step", "action", "users", "events", "conversion_from_previous", "conversion_from_start"),
    finish=_finish_funnel,
    extra_where=f"action IN ({_IN_STEPS})",
))

_register(ReportSpec(
    name="duration_percentiles",
    title="Duration percentiles per action",
    description="p50 / p95 / max of duration_ms per action (nearest rank, computed identically for both engines).",
    sql="""SELECT action, duration_ms FROM {events} WHERE {where} AND duration_ms IS NOT NULL""",
    default_days=7,
    columns=("action", "count", "p50_ms", "p95_ms", "max_ms"),
    reduce_rows=_percentiles_of_rows,
))

_register(ReportSpec(
    name="error_rate",
    title="Error rate per action",
    description=("Attempts and failures per operation: an event counts for its operation (or its action when it has "
                 "none); a failure is status 'error' (recorded under the classified error action)."),
    sql="""SELECT COALESCE(operation, action) AS action, SUM(n) AS events,
       SUM(CASE WHEN status = 'error' THEN n ELSE 0 END) AS errors
FROM (SELECT DATE(timestamp) AS d, user, action, operation, status, COUNT(*) AS n
      FROM {events} WHERE {where}
      GROUP BY DATE(timestamp), user, action, operation, status) AS g
GROUP BY COALESCE(operation, action)
ORDER BY events DESC, action""",
    default_days=7,
    columns=("action", "events", "errors", "error_rate"),
    finish=_with_error_rate,
))

_register(ReportSpec(
    name="error_trend",
    title="Errors per day",
    description="Events, errors (status 'error') and error rate per UTC day, oldest first.",
    # Events per day stream the report index's (app, day) prefix; errors per day come from the small partial index of
    # failed events (spool migration 3) instead of reading every row's status.
    sql="""SELECT d.date AS date, d.events AS events, COALESCE(e.errors, 0) AS errors
FROM (SELECT DATE(timestamp) AS date, COUNT(*) AS events FROM {events} WHERE {where}
      GROUP BY DATE(timestamp)) AS d
LEFT JOIN (SELECT DATE(timestamp) AS date, COUNT(*) AS errors FROM {events} WHERE {where} AND status = 'error'
           GROUP BY DATE(timestamp)) AS e ON d.date = e.date
ORDER BY date""",
    default_days=30,
    columns=("date", "events", "errors", "error_rate"),
    finish=_with_error_rate,
))

_register(ReportSpec(
    name="activity_per_user",
    title="Activity per user",
    description="Events, active days, first and last seen, and errors per user, most active first.",
    # One streaming pass over the (day, user) prefix of the report index counts events and active days; errors come
    # from the partial index of failed events; first/last seen are looked up only on each user's first and last
    # active day (an index seek on (app, day, user) per user) instead of comparing every row's timestamp.
    sql="""SELECT u.user AS user, u.events AS events, u.active_days AS active_days,
       (SELECT MIN(timestamp) FROM {events} WHERE {where} AND DATE(timestamp) = u.first_day AND user = u.user)
         AS first_seen,
       (SELECT MAX(timestamp) FROM {events} WHERE {where} AND DATE(timestamp) = u.last_day AND user = u.user)
         AS last_seen,
       COALESCE(e.errors, 0) AS errors
FROM (SELECT user, SUM(n) AS events, COUNT(*) AS active_days, MIN(d) AS first_day, MAX(d) AS last_day
      FROM (SELECT DATE(timestamp) AS d, user, COUNT(*) AS n FROM {events} WHERE {where}
            GROUP BY DATE(timestamp), user) AS g
      GROUP BY user) AS u
LEFT JOIN (SELECT user, COUNT(*) AS errors FROM {events} WHERE {where} AND status = 'error'
           GROUP BY user) AS e ON u.user = e.user
ORDER BY events DESC, user""",
    default_days=30,
    columns=("user", "events", "active_days", "first_seen", "last_seen", "errors"),
))

DATE_COLUMNS = {"date"}
TIMESTAMP_COLUMNS = {"first_seen", "last_seen", "timestamp", "first_ts", "last_ts"}


# ----- SQL for each engine -----------------------------------------------------------------------------------------


def _where(spec_extra: str, *, since: date | None, user: str | None, action: str | None,
           all_apps: bool = False) -> str:
    parts = [] if all_apps else ["app_name = :app_name"]
    if since is not None:
        parts.append("DATE(timestamp) >= :since_day")
    if user is not None:
        parts.append("user = :user")
    if action is not None:
        parts.append("action = :action")
    if spec_extra:
        parts.append(spec_extra)
    return " AND ".join(parts) or "1 = 1"


def databricks_sql(name: str, *, events: str, since: date | None = None, user: str | None = None,
                   action: str | None = None, all_apps: bool = False) -> str:
    """The report's Databricks SQL with ``{events}`` replaced by ``events`` and the filters in place (``all_apps``:
    no ``app_name`` filter)."""
    spec = REPORTS[name]
    return spec.sql.format(events=events, where=_where(spec.extra_where, since=since, user=user, action=action,
                                                       all_apps=all_apps))


class _ToSpool:
    """sqlglot transform: Databricks → SQLite adjustments that keep answers identical (see the module docstring)."""

    @staticmethod
    def __call__(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.Cast, exp.TsOrDsToDate, exp.Date)) and _is_date_of_timestamp(node):
            # exactly the expression of the spool's idx_events_report, so SQLite can use that index
            return exp.Anonymous(this="substr", expressions=[exp.column("timestamp"), exp.Literal.number(1),
                                                             exp.Literal.number(10)])
        if isinstance(node, exp.Like) and isinstance(node.expression, exp.Literal):
            return exp.Glob(this=node.this, expression=exp.Literal.string(_like_to_glob(node.expression.this)))
        return node


def _is_date_of_timestamp(node: exp.Expression) -> bool:
    target = node.args.get("to")
    if isinstance(node, exp.Cast) and not (isinstance(target, exp.DataType) and target.this == exp.DataType.Type.DATE):
        return False
    inner = node.this
    return isinstance(inner, exp.Column) and inner.name.lower() == "timestamp"


def _like_to_glob(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


@functools.lru_cache(maxsize=256)
def to_sqlite(databricks: str) -> str:
    """Translate a report's Databricks SQL to SQLite for the spool (sqlglot, then the adjustments above); cached
    per statement - the filters are parameters, so there are only a few distinct statements."""
    tree = sqlglot.parse_one(databricks, read="databricks")
    tree = tree.transform(_ToSpool())
    return tree.sql(dialect="sqlite")


def spool_sql(name: str, *, since: date | None = None, user: str | None = None, action: str | None = None,
              all_apps: bool = False) -> str:
    """The report's SQLite SQL for the spool (translated once per filter combination: :func:`to_sqlite` caches)."""
    return to_sqlite(databricks_sql(name, events=SPOOL_TABLE, since=since, user=user, action=action,
                                    all_apps=all_apps))


def _params(app_name: str | None, since: date | None, user: str | None, action: str | None, *,
            for_spool: bool) -> dict:
    params: dict[str, Any] = {} if app_name in (None, ALL_APPS) else {"app_name": app_name}
    if since is not None:
        params["since_day"] = since.isoformat() if for_spool else since
    if user is not None:
        params["user"] = user
    if action is not None:
        params["action"] = action
    return params


# ----- engines -----------------------------------------------------------------------------------------------------


_ROWS_ALIAS = "ctg_table_rows"


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not answer; ``str()`` is an operator message without secrets."""


class WarehouseReader:
    """Runs report SQL on the Databricks warehouse through the connector, with parameterised queries.

    Opens one connection lazily; close with :meth:`close` or use as a context manager. A table that lacks the extension
    columns (a legacy four-column table) is read through a subquery that supplies them (status derived from the action).
    """

    def __init__(self, settings: Settings | None = None, *, connect: Callable[[], Any] | None = None) -> None:
        from ctg_app.warehouse.connection import validate_table_name

        self.settings = settings or get_settings()
        self.table = validate_table_name(self.settings.tracking_table)
        self._connect = connect
        self._conn: Any = None
        self._columns: tuple[str, ...] | None = None
        self._total_rows: int | None = None
        self.table_missing = False

    def __enter__(self) -> WarehouseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (if one was opened)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not hide the answer
                log.debug("closing the warehouse connection failed", exc_info=True)
            self._conn = None

    def connection(self) -> Any:
        """The open connection (opened on first use). Raises :class:`WarehouseUnavailable`."""
        if self._conn is None:
            from ctg_app.warehouse.connection import WarehouseConfigError, connect, describe_error, warehouse_errors

            try:
                self._conn = self._connect() if self._connect else connect(self.settings)
            except (WarehouseConfigError, *warehouse_errors()) as exc:
                raise WarehouseUnavailable(describe_error(exc, self.settings)) from exc
        return self._conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run one statement; returns (column names, rows). Raises :class:`WarehouseUnavailable`."""
        from ctg_app.warehouse.connection import describe_error, warehouse_errors

        conn = self.connection()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, dict(params or {}))
                rows = cursor.fetchall() if cursor.description else []
                names = [d[0] for d in cursor.description or []]
        except warehouse_errors() as exc:
            self.close()
            raise WarehouseUnavailable(describe_error(exc, self.settings)) from exc
        return names, [tuple(r) for r in rows]

    def columns(self) -> tuple[str, ...]:
        """The central table's columns (empty when the table does not exist yet)."""
        from ctg_app.warehouse.connection import is_missing_table

        if self._columns is None:
            # One statement learns both the columns and the row count (a Delta COUNT(*) is answered from metadata).
            try:
                names, rows = self.fetch(f"SELECT *, (SELECT COUNT(*) FROM {self.table}) AS {_ROWS_ALIAS} "
                                         f"FROM {self.table} LIMIT 1")
            except WarehouseUnavailable as exc:
                if is_missing_table(exc):
                    self.table_missing = True
                    self._columns = ()
                    return self._columns
                raise
            names = [n.lower() for n in names]
            self._total_rows = int(rows[0][names.index(_ROWS_ALIAS)]) if rows else 0
            self._columns = tuple(n for n in names if n != _ROWS_ALIAS)
        return self._columns

    def table_info(self) -> tuple[tuple[str, ...], int | None]:
        """``(columns, total rows)`` of the central table (``((), None)`` when it does not exist)."""
        columns = self.columns()
        return columns, (self._total_rows if columns else None)

    def use_table_info(self, columns: Sequence[str], total_rows: int | None) -> None:
        """Adopt a recent :meth:`table_info` (e.g. cached by the usage page) instead of probing the table again."""
        self._columns = tuple(columns)
        self._total_rows = total_rows
        self.table_missing = not self._columns

    def events_relation(self) -> str | None:
        """``{events}`` for the report SQL: the table itself, or a subquery supplying missing extension columns;
        None when the table does not exist."""
        have = set(self.columns())
        if not have:
            return None
        missing = [c for c in TABLE_COLUMNS if c not in have]
        if not missing:
            return self.table
        errors = ", ".join(sql_literal(a) for a in Actions.errors())
        select = []
        for name in TABLE_COLUMNS:
            if name in have:
                select.append(f"`{name}`")
            elif name == "status":
                select.append(f"CASE WHEN action IN ({errors}) THEN 'error' ELSE 'ok' END AS status")
            elif name == "duration_ms":
                select.append("CAST(NULL AS DOUBLE) AS duration_ms")
            else:
                select.append(f"CAST(NULL AS STRING) AS `{name}`")
        return f"(SELECT {', '.join(select)} FROM {self.table}) AS events"

    def detail(self) -> dict[str, Any] | None:
        """``DESCRIBE DETAIL`` of the table (``sizeInBytes``, ``numFiles``, ...) or None when unavailable."""
        try:
            names, rows = self.fetch(f"DESCRIBE DETAIL {self.table}")
        except WarehouseUnavailable:
            return None
        if not rows:
            return None
        return dict(zip(names, rows[0]))


def spool_for(settings: Settings | None = None) -> Spool:
    """The configured spool (the process tracker's, so tests' fixtures apply)."""
    from ctg_app.tracking.recording.tracker import get_tracker

    tracker = get_tracker()
    settings = settings or get_settings()
    if tracker.spool.path == settings.spool_path:
        return tracker.spool
    return Spool.from_settings(settings)


def _frame(name: str, names: Sequence[str], rows: Sequence[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=list(names))
    return normalise_frame(frame)


def normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Same types whichever engine answered: dates as ``datetime.date``, timestamps as naive UTC ``Timestamp``,
    counts as ``int64``."""
    for column in frame.columns:
        if column in DATE_COLUMNS:
            frame[column] = [_as_date(v) for v in frame[column]]
        elif column in TIMESTAMP_COLUMNS:
            frame[column] = pd.to_datetime([_as_naive_utc(v) for v in frame[column]])
    return frame


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _as_naive_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("T", " "))
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


_INT_COLUMNS = {"active_users", "count", "users", "sessions", "questions", "error_count", "events", "errors", "active_days", "users_1", "users_2",
                "users_3", "users_4", "events_1", "events_2", "events_3", "events_4"}


def _finish(spec: ReportSpec, raw: pd.DataFrame, since: date | None = None, today: date | None = None) -> pd.DataFrame:
    for column in raw.columns:
        if column in _INT_COLUMNS:
            raw[column] = pd.array([0 if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                                    for v in raw[column]], dtype="int64")
        elif column in spec.timestamp_columns:
            raw[column] = pd.to_datetime([_as_naive_utc(v) for v in raw[column]])
    if spec.finish_window is not None:
        frame = spec.finish_window(raw, since, today or utc_today())
    else:
        frame = spec.finish(raw) if spec.finish else raw
    frame = frame[list(spec.columns)] if set(spec.columns) <= set(frame.columns) else frame
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class _Plan:
    """What one report run reads: the window, the span the SQL reads (window plus look-back) and the app filter."""

    since: date | None
    sql_since: date | None
    today: date
    app_name: str
    all_apps: bool


def _plan(spec: ReportSpec, days: int | None, app_name: str | None, default_app: str,
          now: datetime | None) -> _Plan:
    since = window_start(days, now)
    if spec.lookback_days is None or since is None:
        sql_since = None
    else:
        sql_since = since - timedelta(days=spec.lookback_days)
    chosen = app_name or (ALL_APPS if spec.all_apps_by_default else default_app)
    return _Plan(since, sql_since, utc_today(now), chosen, chosen == ALL_APPS)


def run_on_spool(name: str, spool: Spool, *, days: int | None = ..., user: str | None = None,  # type: ignore[assignment]
                 action: str | None = None, app_name: str | None = None, now: datetime | None = None) -> pd.DataFrame:
    """Run report ``name`` on a spool file (every row, whatever its delivery state). ``app_name``: one app (default:
    this app's, or every app for the cross-app comparison) or :data:`ALL_APPS`."""
    spec = REPORTS[name]
    days = spec.default_days if days is ... else days
    plan = _plan(spec, days, app_name, get_settings().app_name, now)
    sql = spool_sql(name, since=plan.sql_since, user=user, action=action, all_apps=plan.all_apps)
    cursor = spool.scan(sql, _params(plan.app_name, plan.sql_since, user, action, for_spool=True))
    if spec.reduce_rows is not None:
        return _finish(spec, spec.reduce_rows(cursor), plan.since, plan.today)
    names = [d[0] for d in cursor.description]
    return _finish(spec, _frame(name, names, cursor.fetchall()), plan.since, plan.today)


def run_on_warehouse(name: str, reader: WarehouseReader, *, days: int | None = ...,  # type: ignore[assignment]
                     user: str | None = None, action: str | None = None, app_name: str | None = None,
                     now: datetime | None = None) -> pd.DataFrame:
    """Run report ``name`` on the warehouse (raises :class:`WarehouseUnavailable`); ``app_name`` as for the spool."""
    spec = REPORTS[name]
    days = spec.default_days if days is ... else days
    plan = _plan(spec, days, app_name, reader.settings.app_name, now)
    relation = reader.events_relation()
    if relation is None:  # no table yet: nothing was ever delivered
        if spec.reduce_rows is not None:
            return _finish(spec, spec.reduce_rows([]), plan.since, plan.today)
        names = list(_raw_columns(spec))
        return _finish(spec, _frame(name, names, []), plan.since, plan.today)
    sql = databricks_sql(name, events=relation, since=plan.sql_since, user=user, action=action,
                         all_apps=plan.all_apps)
    names, rows = reader.fetch(sql, _params(plan.app_name, plan.sql_since, user, action, for_spool=False))
    if spec.reduce_rows is not None:
        return _finish(spec, spec.reduce_rows(rows), plan.since, plan.today)
    return _finish(spec, _frame(name, names, rows), plan.since, plan.today)


def _raw_columns(spec: ReportSpec) -> list[str]:
    tree = sqlglot.parse_one(spec.sql.format(events="t", where="1 = 1"), read="databricks")
    return [e.alias_or_name for e in tree.expressions]


def run_report(name: str, *, days: int | None = ..., user: str | None = None,  # type: ignore[assignment]
               action: str | None = None, source: str = SOURCE_AUTO, settings: Settings | None = None,
               spool: Spool | None = None, reader: WarehouseReader | None = None,
               now: datetime | None = None, app_name: str | None = None) -> ReportResult:
    """Run the named report. ``source``: ``warehouse``, ``spool``, or ``auto`` (the warehouse when configured and
    reachable, else the spool with a notice). ``days`` defaults to the report's own window (None: all time).
    ``app_name``: the app to report on (default this app's ``APP_NAME``; the cross-app comparison defaults to every
    app), or :data:`ALL_APPS` for the whole central table.

    On the warehouse the rows still pending in the spool are not included (``get_usage_stats`` merges them); the
    result's ``notice`` says how many are pending when there are any.
    """
    if name not in REPORTS:
        raise KeyError(f"unknown report {name!r}; choose from {', '.join(REPORTS)}")
    spec = REPORTS[name]
    days = spec.default_days if days is ... else days
    settings = settings or get_settings()
    started = time.perf_counter()
    notice = None
    pending = 0
    use_warehouse = source == SOURCE_WAREHOUSE or (source == SOURCE_AUTO and settings.warehouse_configured)
    frame = None
    answered = SOURCE_SPOOL
    if use_warehouse:
        own_reader = reader is None
        reader = reader or WarehouseReader(settings)
        try:
            frame = run_on_warehouse(name, reader, days=days, user=user, action=action,
                                     app_name=app_name or _default_app(spec, settings), now=now)
            answered = SOURCE_WAREHOUSE
            if reader.table_missing:
                notice = "The central table does not exist yet (nothing has been delivered)."
        except WarehouseUnavailable as exc:
            if source == SOURCE_WAREHOUSE:
                raise
            notice = f"Warehouse unavailable ({exc}); showing the local spool instead."
        finally:
            if own_reader:
                reader.close()
    if frame is None:
        spool = spool or spool_for(settings)
        frame = run_on_spool(name, spool, days=days, user=user, action=action,
                             app_name=app_name or _default_app(spec, settings), now=now)
    elif answered == SOURCE_WAREHOUSE:
        pending = _pending_count(spool or spool_for(settings))
        if pending:
            extra = pending_note(pending, included=False)
            notice = f"{notice} {extra}" if notice else extra
    return ReportResult(name=name, frame=frame, source=answered, days=days, since=window_start(days, now), user=user,
                        action=action, notice=notice, seconds=round(time.perf_counter() - started, 4),
                        app_name=app_name or _default_app(spec, settings), pending=pending if answered ==
                        SOURCE_WAREHOUSE else 0)


def _default_app(spec: ReportSpec, settings: Settings) -> str:
    return ALL_APPS if spec.all_apps_by_default else settings.app_name


def pending_note(pending: int, *, included: bool) -> str:
    """The one wording of "events still in the local spool" for every place that shows it: ``included`` says
    whether the number next to it counts them (the headline does; a warehouse report does not)."""
    noun = "event" if pending == 1 else "events"
    if included:
        return f"includes {pending:,} pending {noun} (still in the local spool)"
    return f"{pending:,} pending {noun} (still in the local spool) not in this report yet"


def _pending_count(spool: Spool) -> int:
    try:
        counts = spool.counts()
    except Exception:  # noqa: BLE001 - a notice is not worth failing the report for
        return 0
    return counts.get("pending", 0) + counts.get("dead", 0) + counts.get("parked", 0)  # parked: on the volume


def run_spec_query(name: str, reader: WarehouseReader) -> pd.DataFrame:
    """Run the spec's verbatim example query ``name`` on the warehouse (the table and app name from the settings)."""
    sql = spec_query(name, reader.table, reader.settings.app_name).rstrip().rstrip(";")
    names, rows = reader.fetch(sql)
    return normalise_frame(pd.DataFrame.from_records(rows, columns=names))


# The engagement and problem-question reports register themselves in REPORTS (kept in their own modules).
from ctg_app.tracking.analytics import engagement as _engagement  # noqa: E402,F401
from ctg_app.tracking.analytics import problems as _problems  # noqa: E402,F401
