"""The usage page's facade: one function per panel, all over one :class:`Board` (at most one warehouse connection).

The page builds one :class:`Board` per render and passes it to the panel functions; the board opens its warehouse
connection on the first query that needs it, so a render whose panels are all served from a cache opens none. The
source is chosen once per board (``source="auto"``: the warehouse when configured and reachable, else the spool; or
forced with ``"spool"`` / ``"warehouse"``), never by changing the settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from ctg_app.settings import Settings, get_settings
from ctg_app.tracking.analytics.reports import (
    SOURCE_AUTO,
    SOURCE_SPOOL,
    SOURCE_WAREHOUSE,
    ReportResult,
    WarehouseReader,
    WarehouseUnavailable,
    _params,
    _where,
    pending_note,
    run_report,
    spool_for,
    to_sqlite,
    window_start,
)
from ctg_app.tracking.recording.spool import TABLE as SPOOL_TABLE
from ctg_app.tracking.analytics.stats import SOURCE_WAREHOUSE_AND_SPOOL, UsageStats, get_usage_stats

log = logging.getLogger(__name__)

CHOICE_DAYS = 90  # the filter drop-downs list what was seen this far back


@dataclass(frozen=True)
class TableInfo:
    """What the page knows about the central table: its columns and row count (empty / None when missing)."""

    columns: tuple[str, ...]
    rows: int | None


class Board:
    """One render's data access: the spool, the chosen source and at most one warehouse connection (lazily opened)."""

    def __init__(self, settings: Settings | None = None, *, source: str = SOURCE_AUTO) -> None:
        if source not in (SOURCE_AUTO, SOURCE_SPOOL, SOURCE_WAREHOUSE):
            raise ValueError(f"source must be auto, spool or warehouse, not {source!r}")
        self.settings = settings or get_settings()
        self.requested = source
        self.spool = spool_for(self.settings)
        use_warehouse = source == SOURCE_WAREHOUSE or (source == SOURCE_AUTO and self.settings.warehouse_configured)
        self.reader: WarehouseReader | None = WarehouseReader(self.settings) if use_warehouse else None
        self.warehouse_error: str | None = None
        self.info: TableInfo | None = None

    @property
    def source(self) -> str:
        """``warehouse`` while the warehouse answers, else ``spool``."""
        return SOURCE_WAREHOUSE if self.reader is not None and self.warehouse_error is None else SOURCE_SPOOL

    def cache_key(self) -> tuple[Any, ...]:
        """What identifies this board's data for a cache: the spool, the table, the app and the requested source."""
        s = self.settings
        return (str(s.spool_path), s.tracking_table, s.app_name, s.databricks_server_hostname, s.databricks_http_path,
                self.requested)

    def table_info(self, known: TableInfo | None = None) -> TableInfo | None:
        """Probe the central table once (one statement: columns and rows), or adopt ``known`` (a cached probe).
        None when the source is the spool. A failure switches the board to the spool (``auto``) and is kept in
        :attr:`warehouse_error`; with ``source="warehouse"`` it raises :class:`WarehouseUnavailable`."""
        if self.reader is None or self.warehouse_error is not None:
            return None
        if known is not None:
            self.reader.use_table_info(known.columns, known.rows)
            self.info = known
            return known
        try:
            columns, rows = self.reader.table_info()
        except WarehouseUnavailable as exc:
            if self.requested == SOURCE_WAREHOUSE:
                raise
            self.warehouse_error = str(exc)
            self.reader.close()
            return None
        self.info = TableInfo(columns, rows)
        return self.info

    def close(self) -> None:
        """Close the warehouse connection, if one was opened."""
        if self.reader is not None:
            self.reader.close()


# ----- one function per panel ----------------------------------------------------------------------------------------


#: The (user, action) pairs of a window: both filter drop-downs from one statement.
CHOICES_SQL = "SELECT user, action FROM {events} WHERE {where} GROUP BY user, action"


def filter_choices(board: Board, now: datetime | None = None) -> tuple[list[str], list[str]]:
    """Users and actions seen in the last 90 days (the filter drop-downs), sorted; one statement on either engine."""
    since = window_start(CHOICE_DAYS, now)
    where = _where("", since=since, user=None, action=None)
    rows: list[tuple] = []
    if board.source == SOURCE_WAREHOUSE and board.reader is not None:
        relation = board.reader.events_relation()
        if relation is not None:  # no table yet: nothing delivered, no choices
            _, rows = board.reader.fetch(CHOICES_SQL.format(events=relation, where=where),
                                         _params(board.settings.app_name, since, None, None, for_spool=False))
    else:
        sql = to_sqlite(CHOICES_SQL.format(events=SPOOL_TABLE, where=where))
        rows = board.spool.scan(sql, _params(board.settings.app_name, since, None, None, for_spool=True)).fetchall()
    return sorted({u for u, _ in rows}), sorted({a for _, a in rows})


def headline(board: Board, days: int, user: str | None) -> UsageStats:
    """The headline numbers (events, users, active days, errors): the warehouse plus the pending spool rows."""
    return get_usage_stats(user, days, settings=board.settings, spool=board.spool, reader=board.reader,
                           source=board.source)


#: Reports whose steps or rows are actions themselves: the page's action filter does not apply to them
ACTION_FREE_REPORTS = frozenset({"funnel", "session_funnel", "problem_questions"})


def report(board: Board, name: str, *, days: int | None, user: str | None, action: str | None,
           app_name: str | None = None) -> ReportResult:
    """One chart's or table's report (the funnels and the problem list ignore ``action``: their steps are actions).
    ``app_name``: another app of the central table, or ``ALL_APPS``; default this app (every app for
    ``app_comparison``)."""
    if name in ACTION_FREE_REPORTS:
        action = None
    return run_report(name, days=days, user=user, action=action, source=board.source, settings=board.settings,
                      spool=board.spool, reader=board.reader, app_name=app_name)


def headline_pending_note(stats: UsageStats) -> str | None:
    """"includes N pending events …" when the headline counts spool rows not delivered yet (warehouse + spool),
    else None: the one wording the page shows next to the totals."""
    if stats.source != SOURCE_WAREHOUSE_AND_SPOOL or not stats.spool_events:
        return None
    return pending_note(stats.spool_events, included=True)


def spool_health(board: Board) -> dict[str, Any]:
    """The local spool's delivery status (pending, oldest pending, dead letters, dropped, last flush)."""
    from ctg_app.tracking.delivery.leases import Delivery

    return Delivery(board.spool).status()


@dataclass(frozen=True)
class TableHealth:
    """The central table for the health panel: rows, and size and files from ``DESCRIBE DETAIL`` when known."""

    rows: int | None
    size_bytes: int | None = None
    files: int | None = None


def table_health(board: Board, info: TableInfo | None) -> TableHealth:
    """Rows (from the probe) plus size and file count (one ``DESCRIBE DETAIL``); raises WarehouseUnavailable."""
    if board.reader is None:
        return TableHealth(None)
    if info is None or not info.columns:
        return TableHealth(None)
    detail = board.reader.detail() or {}
    size, files = detail.get("sizeInBytes"), detail.get("numFiles")
    return TableHealth(info.rows, None if size is None else int(size), None if files is None else int(files))


#: The events answer quality is computed from: questions, answers (declined or not), edits (a failed edit keeps
#: ``operation = 'edit_sql'``) and feedback votes.
ANSWER_EVENTS_SQL = ("SELECT timestamp, user, action, status, operation, session_id, details FROM {events} "
                     "WHERE {where} AND (action IN ('generate_question', 'sql_query', 'edit_sql', 'answer_feedback') "
                     "OR operation = 'edit_sql')")
_ANSWER_COLUMNS = ("timestamp", "user", "action", "status", "operation", "session_id", "details")
_ANSWER_ACTIONS = ("generate_question", "sql_query", "edit_sql", "answer_feedback")


def answer_events(board: Board, days: int, user: str | None, now: datetime | None = None) -> pd.DataFrame:
    """The question, answer, edit and feedback events of the window (one statement on either engine; on the
    warehouse plus the spool rows not delivered yet), for the answer-quality panel."""
    since = window_start(days, now)
    where = _where("", since=since, user=user, action=None)
    rows: list[tuple] = []
    if board.source == SOURCE_WAREHOUSE and board.reader is not None:
        relation = board.reader.events_relation()
        if relation is not None:
            _, rows = board.reader.fetch(ANSWER_EVENTS_SQL.format(events=relation, where=where),
                                         _params(board.settings.app_name, since, user, None, for_spool=False))
        pending = board.spool.undelivered_rows(_ANSWER_COLUMNS, app_name=board.settings.app_name,
                                               since_ts=since.isoformat() if since else "", user=user)
        rows = [*rows, *(r for r in pending if r[2] in _ANSWER_ACTIONS or r[4] == "edit_sql")]
    else:
        sql = to_sqlite(ANSWER_EVENTS_SQL.format(events=SPOOL_TABLE, where=where))
        rows = board.spool.scan(sql, _params(board.settings.app_name, since, user, None, for_spool=True)).fetchall()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(_ANSWER_COLUMNS))


def parked(board: Board) -> dict[str, Any] | None:
    """The park tier: segments on the volume with their age, rows of this spool parked, the last park error; None
    when no park volume is configured (one Files API listing, no warehouse statement)."""
    from ctg_app.tracking.delivery.park import parked_status

    return parked_status(board.settings, board.spool)
