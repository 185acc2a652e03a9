"""``get_usage_stats(user_email=None, days=7)`` — the spec's statistics function.

Where the numbers come from:

- **Databricks configured and reachable**: the central table (one parameterised, pre-aggregated query through the
  connector) **plus** the spool rows not delivered yet (state ``pending`` or ``dead``). The warehouse holds the delivered
  rows, so nothing is counted twice; to be safe, pending rows whose ``event_id`` the warehouse already has (a flush that
  committed but had not marked the spool yet) are skipped and counted in ``duplicates_skipped``.
- **Offline** (no warehouse settings): the spool alone, every row (``source="spool"``).
- **Warehouse unreachable**: the spool alone, every row still kept there, with ``notice`` saying so (delivered rows
  older than ``SPOOL_RETENTION_DAYS`` have been purged locally and are then missing).

The window is the spec's ``timestamp >= CURRENT_DATE - INTERVAL days DAY`` in UTC: today plus the ``days`` previous
full days, computed in Python (freezegun-friendly).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from typing import TYPE_CHECKING

from ctg_app.settings import Settings, get_settings
from ctg_app.tracking.recording.spool import TABLE as SPOOL_TABLE
from ctg_app.tracking.recording.spool import Spool

if TYPE_CHECKING:  # pandas, sqlglot and the connector load only when statistics are asked for
    import pandas as pd

    from ctg_app.tracking.analytics.reports import WarehouseReader

log = logging.getLogger(__name__)

SOURCE_WAREHOUSE_AND_SPOOL = "warehouse+spool"
SOURCE_SPOOL = "spool"

#: One row per (UTC day, user, action): every statistic below is derived from this small "cube".
CUBE_SQL = """SELECT DATE(timestamp) AS date, user, action, COUNT(*) AS events,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       MIN(timestamp) AS first_ts, MAX(timestamp) AS last_ts
FROM {events} WHERE {where}
GROUP BY DATE(timestamp), user, action"""
CUBE_COLUMNS = ["date", "user", "action", "events", "errors", "first_ts", "last_ts"]
DEDUPE_BATCH = 20_000  # event ids per warehouse statement (~0.8 MB of JSON, under the 1 MiB parameter limit)


@dataclass
class UsageStats:
    """Usage statistics for one user (``user_email``) or everyone (None) over ``days`` days since ``since`` (UTC).

    Attributes:
        total_events: events in the window.
        unique_users: distinct users.
        active_days: distinct UTC days with at least one event.
        first_seen / last_seen: earliest / latest event timestamp (naive UTC), None when there are no events.
        error_count: events with status ``error`` (recorded under the classified error actions).
        actions: events per action, most frequent first.
        errors_by_type: error events per error action (``sql_error``, ``llm_error``, ...), most frequent first.
        daily: DataFrame ``date, events, errors, active_users`` — one row per UTC day of the window, zeros included.
        by_action: DataFrame ``action, count``.
        source: ``warehouse+spool`` or ``spool``.
        notice: why the numbers may be incomplete (warehouse unreachable, table not created yet), else None.
        warehouse_events / spool_events: how many events came from each side.
        duplicates_skipped: pending spool rows already present in the warehouse (not counted again).
    """

    user_email: str | None
    days: int
    since: date
    source: str
    total_events: int = 0
    unique_users: int = 0
    active_days: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    error_count: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    errors_by_type: dict[str, int] = field(default_factory=dict)
    daily: pd.DataFrame = field(default_factory=lambda: _frame(["date", "events", "errors", "active_users"]))
    by_action: pd.DataFrame = field(default_factory=lambda: _frame(["action", "count"]))
    notice: str | None = None
    warehouse_error: str | None = None
    warehouse_events: int = 0
    spool_events: int = 0
    duplicates_skipped: int = 0

    @property
    def empty(self) -> bool:
        """True when no event falls in the window."""
        return self.total_events == 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (frames as lists of records)."""
        return {
            "user_email": self.user_email, "days": self.days, "since": self.since.isoformat(), "source": self.source,
            "total_events": self.total_events, "unique_users": self.unique_users, "active_days": self.active_days,
            "first_seen": self.first_seen.isoformat(sep=" ") if self.first_seen else None,
            "last_seen": self.last_seen.isoformat(sep=" ") if self.last_seen else None,
            "error_count": self.error_count, "actions": self.actions, "errors_by_type": self.errors_by_type,
            "daily": [{"date": r["date"].isoformat(), "events": int(r["events"]), "errors": int(r["errors"]),
                       "active_users": int(r["active_users"])} for r in self.daily.to_dict(orient="records")],
            "notice": self.notice, "warehouse_error": self.warehouse_error,
            "warehouse_events": self.warehouse_events, "spool_events": self.spool_events,
            "duplicates_skipped": self.duplicates_skipped,
        }


def _frame(columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=columns)


def get_usage_stats(user_email: str | None = None, days: int = 7, *, settings: Settings | None = None,
                    spool: Spool | None = None, reader: WarehouseReader | None = None,
                    now: datetime | None = None, source: str = "auto") -> UsageStats:
    """Usage statistics for ``user_email`` (None: everyone) over the last ``days`` days (see the module docstring).

    ``source``: ``"auto"`` (the warehouse plus pending spool rows when configured and reachable, else the spool with a
    notice), ``"spool"`` (the local spool only, e.g. when the caller already knows the warehouse is down) or
    ``"warehouse"`` (raises ``WarehouseUnavailable`` instead of falling back). A ``reader`` passed in is used and left
    open (so one connection can serve several calls)."""
    from ctg_app.tracking.analytics.reports import (
        SOURCE_AUTO,
        SOURCE_SPOOL,
        SOURCE_WAREHOUSE,
        WarehouseReader,
        WarehouseUnavailable,
        _where,
        spool_for,
        window_start,
    )

    if source not in (SOURCE_AUTO, SOURCE_SPOOL, SOURCE_WAREHOUSE):
        raise ValueError(f"source must be auto, spool or warehouse, not {source!r}")

    settings = settings or get_settings()
    days = int(days)
    since = window_start(days, now)
    user = _normalise(user_email, settings) if user_email else None
    spool = spool or spool_for(settings)
    where = _where("", since=since, user=user, action=None)

    if source == SOURCE_WAREHOUSE or (source == SOURCE_AUTO and settings.warehouse_configured):
        own_reader = reader is None
        reader = reader or WarehouseReader(settings)
        try:
            cube, warehouse_events, notice = _warehouse_cube(reader, where, settings, since, user)
            pending, skipped = _pending_rows(spool, settings, since, user, reader)
            stats = _build(user, days, since, SOURCE_WAREHOUSE_AND_SPOOL, [cube, _cube_of_rows(pending)], now)
            stats.warehouse_events, stats.spool_events, stats.duplicates_skipped = warehouse_events, len(pending), skipped
            stats.notice = notice
            return stats
        except WarehouseUnavailable as exc:
            if source == SOURCE_WAREHOUSE:
                raise
            warehouse_error = str(exc)
            log.info("usage stats: warehouse unavailable (%s); using the local spool", warehouse_error)
        finally:
            if own_reader:
                reader.close()
        stats = _spool_only(spool, where, settings, since, user, days, now)
        stats.warehouse_error = warehouse_error
        stats.notice = (f"Warehouse unavailable ({warehouse_error}): numbers come from the local spool only "
                        f"(delivered events older than {settings.spool_retention_days} days may be missing).")
        return stats
    return _spool_only(spool, where, settings, since, user, days, now)


# ----- pieces ------------------------------------------------------------------------------------------------------


def _normalise(user_email: str, settings: Settings) -> str:
    from ctg_app.tracking.recording.identity import normalise_user

    return normalise_user(user_email, settings.default_user)


#: The spool's cube: the same groups without per-row MIN/MAX(timestamp) (first/last seen come from two small queries on
#: the window's first and last day), so one streaming pass over the report index's (day, user, action) prefix suffices.
SPOOL_CUBE_SQL = """SELECT DATE(timestamp) AS date, user, action, COUNT(*) AS events,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors
FROM {events} WHERE {where}
GROUP BY DATE(timestamp), user, action"""
SPOOL_EDGE_SQL = "SELECT {agg}(timestamp) FROM {events} WHERE {where} AND DATE(timestamp) = :edge_day"


def _spool_sql(databricks: str) -> str:
    """The statement in SQLite (``reports.to_sqlite``, which caches each distinct statement)."""
    from ctg_app.tracking.analytics.reports import to_sqlite

    return to_sqlite(databricks)


def _spool_only(spool: Spool, where: str, settings: Settings, since: date, user: str | None,
                days: int, now: datetime | None = None) -> UsageStats:
    import pandas as pd

    from ctg_app.tracking.analytics.reports import _as_naive_utc, _params

    params = _params(settings.app_name, since, user, None, for_spool=True)
    rows = spool.scan(_spool_sql(SPOOL_CUBE_SQL.format(events=SPOOL_TABLE, where=where)), params).fetchall()
    day_of: dict[str, date] = {}
    days_col, users, actions, events, errors = [], [], [], [], []
    for day_text, row_user, action, count, error_count in rows:
        day = day_of.get(day_text)
        if day is None:
            day = day_of[day_text] = date.fromisoformat(day_text[:10])
        days_col.append(day)
        users.append(row_user)
        actions.append(action)
        events.append(count)
        errors.append(error_count or 0)
    cube = pd.DataFrame({"date": days_col, "user": users, "action": actions,
                         "events": pd.array(events, dtype="int64"), "errors": pd.array(errors, dtype="int64")},
                        columns=CUBE_COLUMNS[:5])
    first_seen = last_seen = None
    if day_of:
        texts = sorted(day_of)
        for agg, edge in (("MIN", texts[0]), ("MAX", texts[-1])):
            sql = _spool_sql(SPOOL_EDGE_SQL.format(agg=agg, events=SPOOL_TABLE, where=where))
            value = spool.scan(sql, {**params, "edge_day": edge}).fetchone()[0]
            if agg == "MIN":
                first_seen = _as_naive_utc(value)
            else:
                last_seen = _as_naive_utc(value)
    stats = _build(user, days, since, SOURCE_SPOOL, [cube], now)
    if not stats.empty:
        stats.first_seen, stats.last_seen = first_seen, last_seen
    stats.spool_events = stats.total_events
    return stats


def _warehouse_cube(reader: WarehouseReader, where: str, settings: Settings, since: date,
                    user: str | None) -> tuple[pd.DataFrame, int, str | None]:
    import pandas as pd

    from ctg_app.tracking.analytics.reports import _params, normalise_frame

    relation = reader.events_relation()
    if relation is None:
        return _empty_cube(), 0, "The central table does not exist yet: only events still in the local spool count."
    names, rows = reader.fetch(CUBE_SQL.format(events=relation, where=where),
                               _params(settings.app_name, since, user, None, for_spool=False))
    cube = normalise_frame(pd.DataFrame.from_records(rows, columns=[n.lower() for n in names] or CUBE_COLUMNS))
    return cube, int(cube["events"].sum()) if not cube.empty else 0, None


def _pending_rows(spool: Spool, settings: Settings, since: date, user: str | None,
                  reader: WarehouseReader) -> tuple[pd.DataFrame, int]:
    """Spool rows not delivered yet in the window, minus those the warehouse already has (by ``event_id``)."""
    import pandas as pd

    columns = ("event_id", "timestamp", "user", "action", "status")
    rows = spool.undelivered_rows(columns, app_name=settings.app_name, since_ts=since.isoformat(), user=user)
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    frame = frame.drop_duplicates(subset=["event_id"])
    if frame.empty or "event_id" not in reader.columns():
        return frame, 0
    present: set[str] = set()
    ids = frame["event_id"].tolist()
    for start in range(0, len(ids), DEDUPE_BATCH):
        chunk = json.dumps([{"id": i} for i in ids[start:start + DEDUPE_BATCH]], separators=(",", ":"))
        _, found = reader.fetch(
            f"SELECT t.event_id FROM {reader.table} AS t "
            "JOIN (SELECT inline(from_json(:ids, 'ARRAY<STRUCT<id: STRING>>'))) AS s ON t.event_id = s.id",
            {"ids": chunk},
        )
        present.update(r[0] for r in found)
    if not present:
        return frame, 0
    kept = frame[~frame["event_id"].isin(present)]
    return kept, len(frame) - len(kept)


def _empty_cube() -> pd.DataFrame:
    return _frame(CUBE_COLUMNS)


def _cube_of_rows(rows: pd.DataFrame) -> pd.DataFrame:
    from ctg_app.tracking.analytics.reports import normalise_frame

    if rows.empty:
        return _empty_cube()
    frame = rows.assign(date=rows["timestamp"].str.slice(0, 10), errors=(rows["status"] == "error").astype("int64"))
    cube = (frame.groupby(["date", "user", "action"], as_index=False)
            .agg(events=("event_id", "size"), errors=("errors", "sum"), first_ts=("timestamp", "min"),
                 last_ts=("timestamp", "max")))
    return normalise_frame(cube[CUBE_COLUMNS])


def _build(user: str | None, days: int, since: date, source: str, cubes: list[pd.DataFrame],
           now: datetime | None = None) -> UsageStats:
    import pandas as pd

    from ctg_app.tracking.analytics.reports import window_start

    parts = [c for c in cubes if not c.empty]
    stats = UsageStats(user_email=user, days=days, since=since, source=source)
    today = window_start(0, now)
    all_days = [d.date() for d in pd.date_range(since, max(today, since), freq="D")]
    if not parts:
        stats.daily = pd.DataFrame({"date": all_days, "events": 0, "errors": 0, "active_users": 0})
        return stats
    cube = pd.concat(parts, ignore_index=True)
    cube["events"] = cube["events"].astype("int64")
    cube["errors"] = cube["errors"].astype("int64")
    stats.total_events = int(cube["events"].sum())
    stats.error_count = int(cube["errors"].sum())
    stats.unique_users = int(cube["user"].nunique())
    stats.active_days = int(cube["date"].nunique())
    if "first_ts" in cube.columns:  # the spool-only path finds first/last seen itself
        stats.first_seen = pd.Timestamp(cube["first_ts"].min()).to_pydatetime()
        stats.last_seen = pd.Timestamp(cube["last_ts"].max()).to_pydatetime()
    by_action = (cube.groupby("action", as_index=False)["events"].sum()
                 .rename(columns={"events": "count"})
                 .sort_values(["count", "action"], ascending=[False, True], kind="stable").reset_index(drop=True))
    stats.by_action = by_action
    stats.actions = {a: int(c) for a, c in zip(by_action["action"], by_action["count"])}
    errors = (cube[cube["errors"] > 0].groupby("action", as_index=False)["errors"].sum()
              .sort_values(["errors", "action"], ascending=[False, True], kind="stable"))
    stats.errors_by_type = {a: int(c) for a, c in zip(errors["action"], errors["errors"])}
    daily = cube.groupby("date").agg(events=("events", "sum"), errors=("errors", "sum"),
                                     active_users=("user", "nunique"))
    last_day = max(max(all_days), max(cube["date"]))
    index = [d.date() for d in pd.date_range(since, last_day, freq="D")]
    daily = daily.reindex(index, fill_value=0).rename_axis("date").reset_index()
    for column in ("events", "errors", "active_users"):
        daily[column] = daily[column].astype("int64")
    stats.daily = daily
    return stats
