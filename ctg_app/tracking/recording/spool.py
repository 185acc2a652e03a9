"""The local SQLite spool: events are durable here before a tracked call returns; the flush ships them later.

The schema is created and versioned by :data:`MIGRATIONS` (``PRAGMA user_version``) with sqlite-utils; the request path
is one prepared ``INSERT`` and its commit on a per-thread connection (WAL, ``synchronous=NORMAL`` by default, a busy
timeout), with no thread hand-off and no network. Many threads and processes may write at once.

Verbs: :meth:`Spool.append` (request path), :meth:`Spool.rows`, :meth:`Spool.counts`, :meth:`Spool.has_event`,
:meth:`Spool.undelivered_rows` and :meth:`Spool.scan` (reading). The delivery verbs (claim, ack, release, purge) live
in ``ctg_app.tracking.delivery.leases.Delivery`` on the same table; no other module writes SQL against it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from ctg_app.settings import Settings
from ctg_app.tracking.recording.event import EVENT_COLUMNS, Event, Field

log = logging.getLogger(__name__)

TABLE = "events"
STATE_PENDING = "pending"
STATE_DELIVERED = "delivered"
STATE_DEAD = "dead"
DROPPED_COUNTER = "dropped_unwritable"  # events lost while the spool was unwritable (persistent)
#: In a segment file on the park volume (``ctg_app.tracking.delivery.park``), not yet known to be delivered.
STATE_PARKED = "parked"

_INSERT = f"INSERT INTO {TABLE} ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
_COUNTER_UPSERT = ("INSERT INTO counters (name, value) VALUES (?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")
_CORRUPT_MARKERS = ("file is not a database", "malformed", "file is encrypted", "not a database")


def _migration_1(db: sqlite_utils.Database) -> None:
    """Events with the flush's bookkeeping columns, counters and a small key/value table."""
    db[TABLE].create(
        {
            "seq": int,
            "event_id": str,
            "timestamp": str,
            "app_name": str,
            "user": str,
            "action": str,
            "operation": str,
            "status": str,
            "error_type": str,
            "error_message": str,
            "duration_ms": float,
            "session_id": str,
            "details": str,
            # delivery bookkeeping (the flush)
            "state": str,
            "attempts": int,
            "lease_owner": str,
            "lease_expires_at": float,
            "next_attempt_at": float,
            "last_error": str,
            "delivered_at": str,
        },
        pk="seq",
        not_null={"event_id", "timestamp", "app_name", "user", "action", "status", "details", "state", "attempts",
                  "next_attempt_at"},
        defaults={"details": "{}", "state": STATE_PENDING, "attempts": 0, "next_attempt_at": 0.0},
    )
    # Claims scan undelivered rows in order; delivered rows (kept for retention) must not slow that down.
    db[TABLE].create_index(["state", "seq"], index_name="idx_events_state_seq")
    db["counters"].create({"name": str, "value": int}, pk="name", not_null={"value"})
    db["meta"].create({"key": str, "value": str}, pk="key")


def _migration_2(db: sqlite_utils.Database) -> None:
    """The usage reports' covering index (``ctg_app.tracking.analytics.reports``): ordered by app, UTC day, user, action so a
    report's first aggregation streams it without sorting; every column a report reads is in it (no table lookups)."""
    db.execute(
        f"CREATE INDEX IF NOT EXISTS idx_events_report ON {TABLE} "
        "(app_name, substr(timestamp, 1, 10), user, action, operation, status, timestamp, duration_ms)"
    )


def _migration_3(db: sqlite_utils.Database) -> None:
    """A partial index of the failed events only (a few percent of rows, so inserts of successes do not pay for it):
    error counts per day or per user read this small index instead of every row's status."""
    db.execute(
        f"CREATE INDEX IF NOT EXISTS idx_events_errors ON {TABLE} "
        "(app_name, substr(timestamp, 1, 10), user, action) WHERE status = 'error'"
    )


def add_field_migration(field: Field) -> Callable[[sqlite_utils.Database], None]:
    """The migration that adds a new event :class:`Field` to the spool: append its result to :data:`MIGRATIONS` when
    a field is added to ``event.FIELDS`` (a nullable column; old rows read as NULL)."""

    def migrate(db: sqlite_utils.Database) -> None:
        db[TABLE].add_column(field.name, field.spool_type)

    migrate.__doc__ = f"The event field {field.name!r}."
    return migrate
def _migration_4(db: sqlite_utils.Database) -> None:
    """The park tier: the segment file (on the park volume) holding a row in state ``parked``."""
    db.execute(f"ALTER TABLE {TABLE} ADD COLUMN parked_segment TEXT")


#: Ordered schema migrations; migration N brings ``user_version`` from N-1 to N. Append, never edit, so old spool
#: files stay readable.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migration_1, _migration_2, _migration_3, _migration_4]

#: Scans of a large spool (the usage reports walk up to a million index entries) read through a memory map rather
#: than one read() system call per page. Only scanning connections map the file: mapped pages count in a process's
#: resident size, and the flush and the request path have no use for them.
MMAP_BYTES = 1 << 30
SCHEMA_VERSION = len(MIGRATIONS)
#: SQLite's own wait per attempt on the request path: its busy handler sleeps 1, 2, 5, 10 … ms between polls, so under
#: steady contention from many writers a single 100 ms wait polls only ~8 times and can starve; the recorder instead
#: retries attempts this short until ``TRACKING_REQUEST_LOCK_WAIT_MS`` (default 100 ms) has passed (see ``Tracker``).
REQUEST_LOCK_POLL_MS = 2


_fork_generation = 0


def _after_fork_in_child() -> None:
    # A connection must never cross fork(); bumping the generation makes every Spool open fresh ones in the child.
    # (Cheaper than calling os.getpid() on every insert.)
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


class SpoolError(RuntimeError):
    """The spool cannot be used (for example, it was written by a newer version of this code)."""


class Spool:
    """A spool file. Cheap to construct; connections are opened lazily, one per thread (and per process after fork)."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000,
                 setup_busy_timeout_ms: int | None = None):
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout_ms = int(busy_timeout_ms)
        # Opening a connection (creating the file, WAL mode, schema migration) happens once per thread and must not
        # fail because another process is creating the same file at that moment: it may wait longer than each call.
        self.setup_busy_timeout_ms = max(self.busy_timeout_ms, int(setup_busy_timeout_ms or 0))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._schema_ready_generation: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, request_path: bool = False) -> Spool:
        """The spool the settings name (``TRACKING_SPOOL_PATH``, its synchronous mode and busy timeout).

        ``request_path=True`` (the recorder): each attempt waits only :data:`REQUEST_LOCK_POLL_MS` for a lock and the
        recorder gives up after ``TRACKING_REQUEST_LOCK_WAIT_MS``, so a held spool costs a tracked call a dropped, counted
        event instead of a multi-second stall; flush and CLI paths keep ``TRACKING_SPOOL_BUSY_TIMEOUT_MS`` (as does
        opening a connection, once per thread, which may have to wait for another process creating the schema)."""
        busy_ms = settings.spool_busy_timeout_ms
        if request_path:  # SQLite polls a held lock with growing sleeps; the recorder re-polls finely up to the bound
            busy_ms = min(busy_ms, REQUEST_LOCK_POLL_MS)
        return cls(settings.spool_path, synchronous=settings.spool_synchronous, busy_timeout_ms=busy_ms,
                   setup_busy_timeout_ms=settings.spool_busy_timeout_ms)

    # ----- connections -------------------------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode: each statement is its own transaction unless ``BEGIN`` is issued)."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.generation != _fork_generation:
            conn = self._open()
            local.conn, local.generation, local.mapped = conn, _fork_generation, False
        return conn

    def scan_connection(self) -> sqlite3.Connection:
        """This thread's connection, set up for large read-only scans (memory-mapped reads; see :data:`MMAP_BYTES`)."""
        conn = self.connection()
        if not getattr(self._local, "mapped", False):
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            self._local.mapped = True
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._connect_and_migrate()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self.quarantine(exc)
            conn = self._connect_and_migrate()
        return conn

    def _connect_and_migrate(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.setup_busy_timeout_ms / 1000,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self.setup_busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            if self._schema_ready_generation != _fork_generation:
                with self._lock:
                    self._migrate(conn)
                    self._schema_ready_generation = _fork_generation
            if self.busy_timeout_ms != self.setup_busy_timeout_ms:
                conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise SpoolError(f"spool {self.path} has schema v{version}; this code knows up to v{SCHEMA_VERSION}")
        conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see the new version
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            db = sqlite_utils.Database(conn)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](db)
                conn.execute(f"PRAGMA user_version = {number}")
                log.info("spool %s migrated to schema v%d", self.path, number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection (other threads' connections close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ----- corruption ----------------------------------------------------------------------------------------------

    def quarantine(self, reason: BaseException | str) -> Path | None:
        """Move a corrupt spool (and its -wal/-shm files) aside with a timestamped name; a fresh one is created next use."""
        self.close()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, target)
        except FileNotFoundError:  # another process moved it first
            return None
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{target}{suffix}"))
        self._schema_ready_generation = None
        log.warning("spool %s was corrupt (%s); moved it to %s and started a fresh one",
                    self.path, type(reason).__name__ if isinstance(reason, BaseException) else reason, target)
        return target

    # ----- the request path ----------------------------------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Insert one event and commit it (durable when this returns). A corrupt file is quarantined and the insert retried."""
        try:
            self.connection().execute(_INSERT, event)
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self.quarantine(exc)
            self.connection().execute(_INSERT, event)

    # ----- reading -------------------------------------------------------------------------------------------------

    def rows(self, *, session_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Events in insertion order as dicts of the event fields (the newest ``limit`` when given)."""
        where, params = ("WHERE session_id = ?", [session_id]) if session_id is not None else ("", [])
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM {TABLE} {where} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        cursor = self.connection().execute(sql, params)
        return [dict(zip(EVENT_COLUMNS, row)) for row in reversed(cursor.fetchall())]

    def counts(self) -> dict[str, int]:
        """Number of events per delivery state (``pending``, ``delivered``, ``dead``, zeros included; ``parked`` too
        when there are parked rows)."""
        result = {STATE_PENDING: 0, STATE_DELIVERED: 0, STATE_DEAD: 0}
        for state, count in self.connection().execute(f"SELECT state, COUNT(*) FROM {TABLE} GROUP BY state"):
            result[state] = count
        return result

    def has_event(self, event_id: str) -> bool:
        """True when the event ``event_id`` is in the spool (whatever its delivery state)."""
        return self.connection().execute(f"SELECT 1 FROM {TABLE} WHERE event_id = ? LIMIT 1", (event_id,)).fetchone() \
            is not None

    def undelivered_rows(self, columns: tuple[str, ...], *, app_name: str, since_ts: str,
                         user: str | None = None) -> list[tuple]:
        """``columns`` of the app's events not delivered yet (pending, dead or parked) from ``since_ts`` on, for ``user``
        when given (a scan: the analytics merge these with the warehouse's rows)."""
        unknown = set(columns) - set(EVENT_COLUMNS)
        if unknown:
            raise ValueError(f"not event columns: {sorted(unknown)}")
        sql = (f"SELECT {', '.join(columns)} FROM {TABLE} "
               f"WHERE state IN ('{STATE_PENDING}', '{STATE_DEAD}', '{STATE_PARKED}') AND app_name = :app_name AND timestamp >= :since_ts")
        params: dict[str, Any] = {"app_name": app_name, "since_ts": since_ts}
        if user is not None:
            sql += " AND user = :user"
            params["user"] = user
        return self.scan_connection().execute(sql, params).fetchall()

    def scan(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Run one read-only report statement (SQLite, against the ``events`` table) on the scanning connection; the
        analytics' report SQL is translated from Databricks SQL (``analytics.reports.to_sqlite``)."""
        return self.scan_connection().execute(sql, params)

    # ----- counters and metadata -----------------------------------------------------------------------------------

    def add_to_counter(self, name: str, amount: int) -> None:
        """Persistently add ``amount`` to the counter ``name`` (e.g. events dropped while the spool was unwritable)."""
        self.connection().execute(_COUNTER_UPSERT, (name, int(amount)))

    def counters(self) -> dict[str, int]:
        """All persistent counters."""
        return dict(self.connection().execute("SELECT name, value FROM counters"))

    def set_meta(self, key: str, value: str | None) -> None:
        """Store a small piece of state (e.g. the last flush result)."""
        self.connection().execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def meta(self) -> dict[str, str]:
        """All stored metadata."""
        return dict(self.connection().execute("SELECT key, value FROM meta"))

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """``BEGIN <mode>`` … ``COMMIT`` on this thread's connection (rolled back on error)."""
        conn = self.connection()
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, sqlite3.OperationalError):  # locked, read-only, disk full, no such table: not corruption
        return False
    message = str(exc).lower()
    return any(marker in message for marker in _CORRUPT_MARKERS)
