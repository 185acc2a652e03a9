"""The local SQLite spool: events are durable here before a tracked call returns; the flush ships them later.

The schema is created and versioned by :data:`MIGRATIONS` (``PRAGMA user_version``) with sqlite-utils; the request path
(:meth:`Spool.append`) is one prepared ``INSERT`` and its commit on a per-thread connection (WAL, ``synchronous=NORMAL``
by default, SQLite's own busy handler bounded by the busy timeout), with no thread hand-off and no network. Many
threads and processes may write at once.

Verbs: :meth:`Spool.append` (request path), :meth:`Spool.rows`, :meth:`Spool.counts`, :meth:`Spool.has_event`,
:meth:`Spool.undelivered_rows` and :meth:`Spool.scan` (reading). The delivery verbs (claim, ack, release, purge) live
in ``ctg_app.tracking.delivery.leases.Delivery`` on the same table; no other module writes SQL against it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from ctg_app.settings import Settings
from ctg_app.tracking.recording import integrity
from ctg_app.tracking.recording.event import (  # noqa: F401 - the states are re-exported for the delivery verbs
    EVENT_COLUMNS,
    STATE_DEAD,
    STATE_DELIVERED,
    STATE_PARKED,
    STATE_PENDING,
    STATES,
    Event,
    Field,
)
from ctg_app.tracking.recording.integrity import FileIdentity, identity_of, is_corruption

log = logging.getLogger(__name__)

TABLE = "events"
DROPPED_COUNTER = "dropped_unwritable"  # events lost while the spool was unwritable (persistent)

_INSERT = f"INSERT INTO {TABLE} ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
_COUNTER_UPSERT = ("INSERT INTO counters (name, value) VALUES (?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")


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
#: How often a connection checks that its file is still the one at the spool path. Rows written in between into a
#: file that was moved or deleted are not lost: they are salvaged from this very connection when it notices.
IDENTITY_CHECK_S = 0.02
SCHEMA_VERSION = len(MIGRATIONS)


#: The request path's wait for a held write lock, in two phases (chosen by ``benchmarks/bench_tracking.py``, see the
#: README): SQLite's own busy handler for the first half of the bound - it sleeps 1, 2, 5, 10, 15, 20 ms between
#: polls, cheap and fast when the lock frees soon, but a writer unlucky at its few polls starves behind writers that
#: take the lock back at once - then attempts of this many ms (SQLite sleeps 1 ms between polls) until the bound, so
#: a writer kept waiting that long polls often enough to get its turn. Handler alone: ~0.04 % of events dropped under
#: 8 writers; 2 ms attempts alone: 0.66-0.75x raw throughput; both: ~0.9x and none dropped.
REQUEST_TAIL_POLL_MS = 2


def request_busy_ms(request_lock_wait_ms: int) -> int:
    """The busy timeout of the request path's connections: the first phase of ``request_lock_wait_ms``."""
    return max(1, int(request_lock_wait_ms) // 2)


_fork_generation = 0


def _after_fork_in_child() -> None:
    # A connection must never cross fork(); bumping the generation makes every Spool open fresh ones in the child.
    # (Cheaper than calling os.getpid() on every insert.)
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


class SpoolError(RuntimeError):
    """The spool cannot be used (for example, it was written by a newer version of this code)."""


F = TypeVar("F", bound=Callable[..., Any])


def survives_corruption(method: F) -> F:
    """Run a spool verb; if the file turns out corrupt, quarantine it (:meth:`Spool.recover`) and run it once more on
    the fresh spool the readable rows were salvaged into. Only for verbs that are one statement or one transaction
    (methods of a :class:`Spool`, or of an object whose ``spool`` attribute is one)."""

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            spool = self if isinstance(self, Spool) else self.spool  # a Spool, or a verb set holding one
            spool.recover(exc)
            return method(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


class _Watch:
    """Kept in a thread's slot next to its connection. When the slot is freed - the thread ended, or the process is
    exiting - and the connection's file was deleted or replaced since its last identity check, the connection is handed
    to the spool's retired list instead of closing with the thread: the rows the thread committed last are in that
    file and nobody else can reach them. :meth:`Spool.salvage_retired` salvages them (on the next identity check of
    any thread, at exit, or in ``reconcile``). One ``stat`` per thread end; nothing on the request path."""

    __slots__ = ("conn", "identity", "file_id", "path", "retired", "generation", "armed")

    def __init__(self, conn: sqlite3.Connection, identity: FileIdentity | None, file_id: str, path: Path,
                 retired: list[tuple[sqlite3.Connection, str, str]]) -> None:
        self.conn, self.identity, self.file_id, self.path, self.retired = conn, identity, file_id, path, retired
        self.generation, self.armed = _fork_generation, True

    def __del__(self) -> None:
        if not self.armed or self.generation != _fork_generation:  # replaced, closed, or inherited across fork
            return
        self.armed = False
        try:
            now = identity_of(self.path)
            if now != self.identity and self.path.parent.exists():
                self.retired.append((self.conn, self.file_id, "deleted" if now is None else "replaced"))
        except Exception:  # noqa: BLE001 - a finaliser must not raise
            pass


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
        self._orphans: list[sqlite3.Connection] = []  # old files whose salvage failed, retried by reconcile()
        # connections of ended threads whose file was deleted or replaced (see _Watch), salvaged by salvage_retired()
        self._retired: list[tuple[sqlite3.Connection, str, str]] = []

    @classmethod
    def from_settings(cls, settings: Settings, *, request_path: bool = False) -> Spool:
        """The spool the settings name (``TRACKING_SPOOL_PATH``, its synchronous mode and busy timeout).

        ``request_path=True`` (the recorder): a write waits for the lock in SQLite's own busy handler for the first
        half of ``TRACKING_REQUEST_LOCK_WAIT_MS`` (:func:`request_busy_ms`), the recorder polls finely for the rest
        (see ``Tracker``), so a held spool costs a tracked call a
        dropped, counted event instead of a multi-second stall; flush and CLI paths keep
        ``TRACKING_SPOOL_BUSY_TIMEOUT_MS`` (as does opening a connection, once per thread, which may have to wait for
        another process creating the schema)."""
        busy_ms = settings.spool_busy_timeout_ms
        if request_path:
            busy_ms = min(busy_ms, request_busy_ms(settings.request_lock_wait_ms))
        return cls(settings.spool_path, synchronous=settings.spool_synchronous, busy_timeout_ms=busy_ms,
                   setup_busy_timeout_ms=settings.spool_busy_timeout_ms)

    # ----- connections -------------------------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode: each statement is its own transaction unless ``BEGIN`` is issued).

        At most every :data:`IDENTITY_CHECK_S` it checks that the path still names the file the connection opened
        (one ``stat``, a few microseconds, so not on every insert): a spool moved aside, replaced or deleted by
        another process is followed, and its rows - including any this thread wrote since - are salvaged (see
        :mod:`~ctg_app.tracking.recording.integrity`)."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.generation != _fork_generation:
            self._disarm()
            conn, local.identity, local.file_id = self._open()
            local.conn, local.generation, local.mapped = conn, _fork_generation, False
            local.checked_at = time.monotonic()
            local.watch = _Watch(conn, local.identity, local.file_id, self.path, self._retired)
        else:
            now = time.monotonic()
            if now - local.checked_at >= IDENTITY_CHECK_S:
                local.checked_at = now
                if identity_of(self.path) != local.identity:
                    conn = self._follow(None, None)
                if self._retired:
                    self.salvage_retired()
        return conn

    def _disarm(self) -> None:
        watch = getattr(self._local, "watch", None)
        if watch is not None:
            watch.armed = False
            self._local.watch = None

    def salvage_retired(self) -> None:
        """Salvage the rows of ended threads' connections whose file was deleted or replaced after their last
        identity check (see :class:`_Watch`) into the file now at the path. The tracker calls this at exit."""
        while self._retired:
            try:
                old, old_id, event = self._retired.pop()
            except IndexError:  # another thread took the last one
                return
            self._salvage_old(old, old_id, self.connection(), event, None)

    def check_identity(self) -> None:
        """Check now that this thread's connection still uses the file at the path (follow and salvage if not).
        Nothing happens when the spool's whole directory is gone (removed on purpose, e.g. a cleaned-up temp dir)."""
        if getattr(self._local, "conn", None) is not None and self.path.parent.exists():
            self._local.checked_at = float("-inf")
            self.connection()

    def scan_connection(self) -> sqlite3.Connection:
        """This thread's connection, set up for large read-only scans (memory-mapped reads; see :data:`MMAP_BYTES`)."""
        conn = self.connection()
        if not getattr(self._local, "mapped", False):
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            self._local.mapped = True
        return conn

    @property
    def file_id(self) -> str:
        """The id of the spool file this thread's connection uses (changes when the file is quarantined or replaced)."""
        self.connection()
        return self._local.file_id

    def _open(self) -> tuple[sqlite3.Connection, FileIdentity | None, str]:
        """Connect (creating and migrating the file if needed) under the shared spool lock; a file found corrupt on
        opening is quarantined and its readable rows salvaged into a fresh one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        integrity.set_aside_orphaned_sidecars(self.path)
        found: FileIdentity | None = None
        with integrity.spool_lock(self.path, exclusive=False):
            try:
                conn = self._connect_and_migrate()
                identity = identity_of(self.path)
                return conn, identity, integrity.source_id(conn, identity)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc):
                    raise
                found = identity_of(self.path)
        target = integrity.quarantine_file(self.path, found)
        try:
            conn, identity, file_id = self._open()
        except Exception:
            if target is not None:
                integrity.note_for_retry(self.path, target)
            raise
        if target is not None:
            try:
                self._salvage_file(target, conn, found)
            except Exception:  # noqa: BLE001 - the new file works; a later reconcile() salvages the old one
                log.warning("could not salvage %s yet; it is listed for a later salvage", target, exc_info=True)
                integrity.note_for_retry(self.path, target)
        return conn, identity, file_id

    def _connect_and_migrate(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.setup_busy_timeout_ms / 1000,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self.setup_busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            with self._lock:  # the file may be new (after a quarantine or a deletion): always look at its version
                self._migrate(conn)
            if conn.execute("SELECT 1 FROM meta WHERE key = ?", (integrity.META_ID,)).fetchone() is None:
                integrity.ensure_id(conn)
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
        self._disarm()
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ----- integrity: corruption, moves, replacement, deletion -----------------------------------------------------

    def recover(self, reason: BaseException | str = "corrupt") -> Path | None:
        """This thread's file is corrupt: quarantine it (unless another process already moved or replaced it), then
        continue on the file now at the path with the old file's readable rows salvaged into it. Returns the
        quarantined file's new name (None when another process moved it first)."""
        local = self._local
        if getattr(local, "conn", None) is None or local.generation != _fork_generation:
            self.connection()  # opening quarantines a corrupt file by itself (see _open)
            return None
        target = integrity.quarantine_file(self.path, local.identity)
        log.warning("spool %s: %s; %s", self.path,
                    type(reason).__name__ if isinstance(reason, BaseException) else reason,
                    f"quarantined as {target}" if target else "already replaced by another process")
        self._follow("quarantined", target)
        return target

    quarantine = recover  # the name earlier versions used

    def _follow(self, event: str | None, moved_to: Path | None) -> sqlite3.Connection:
        """Switch this thread to the file now at the path and salvage the rows of the one it had open."""
        local = self._local
        old, old_id = getattr(local, "conn", None), getattr(local, "file_id", None)
        if event is None:
            event = "deleted" if identity_of(self.path) is None else "replaced"
        local.conn = None
        self._disarm()
        try:
            conn, local.identity, local.file_id = self._open()
        except Exception:
            # e.g. SQLITE_BUSY while several processes create the new file at once: the caller's call fails (and is
            # counted), but the old file's rows must not be forgotten with the old connection
            if old is not None and old_id is not None:
                self._keep_for_retry(old, moved_to)
            raise
        local.conn, local.generation, local.mapped = conn, _fork_generation, False
        local.checked_at = time.monotonic()
        local.watch = _Watch(conn, local.identity, local.file_id, self.path, self._retired)
        if old is None or old_id is None:
            return conn
        return self._salvage_old(old, old_id, conn, event, moved_to)

    def _salvage_old(self, old: sqlite3.Connection, old_id: str, conn: sqlite3.Connection, event: str,
                     moved_to: Path | None) -> sqlite3.Connection:
        """Salvage the rows of the file ``old`` still reads into ``conn`` (the current file); close ``old`` when done,
        else keep it for a retry."""
        try:
            # the old connection has the request path's short busy timeout: reading it for the salvage must wait like
            # the salvage's writes do
            old.execute(f"PRAGMA busy_timeout = {self.setup_busy_timeout_ms}")
            with self._patient(conn):
                record = integrity.salvage(old, conn, source_key=old_id, event=event, path=moved_to)
            if record.unreadable_file and moved_to is not None:  # e.g. a damaged header: try a rebuilt copy
                self._salvage_file(moved_to, conn, None)
            if record.salvaged or record.lost_undelivered:
                log.warning("spool file %s (%s): %d events salvaged into the current spool so far, %d unreadable",
                            self.path, record.event, record.salvaged, record.lost_undelivered)
        except Exception:  # noqa: BLE001 - keep the old file open: reconcile() retries
            log.warning("could not salvage the rows of the %s spool file yet", event, exc_info=True)
            self._keep_for_retry(old, moved_to)
            self._orphans.append(old)
            return conn
        old.close()
        return conn

    def _keep_for_retry(self, old: sqlite3.Connection, moved_to: Path | None) -> None:
        """A salvage failed: make sure a later process can retry it. The old file is on disk under ``moved_to`` when
        it was quarantined; a deleted or replaced one is reachable only through ``old``, so it is copied next to the
        spool first (``VACUUM INTO``: a read). The file's path goes on the persistent retry list."""
        keep = moved_to
        if keep is None:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            keep = self.path.with_name(f"{self.path.name}.orphan-{stamp}-{os.getpid()}-{threading.get_ident()}")
            try:
                old.execute("VACUUM INTO ?", (str(keep),))
            except sqlite3.Error:
                log.warning("could not copy the unsalvaged spool file to %s: only this process can retry it", keep,
                            exc_info=True)
                return
        try:
            integrity.note_for_retry(self.path, keep)
        except OSError:
            log.warning("could not note %s for a later salvage", keep, exc_info=True)

    def _salvage_file(self, path: Path, dest: sqlite3.Connection, identity: FileIdentity | None) -> bool:
        """Salvage a quarantined file by name; when even its schema cannot be read (a damaged header), from a copy
        with the header rebuilt (:func:`~ctg_app.tracking.recording.integrity.rebuilt_copy`). False when the file
        cannot be opened at all."""
        copy: Path | None = None
        try:
            source = sqlite3.connect(path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
            if not _schema_readable(source):
                copy = integrity.rebuilt_copy(path)
                if copy is not None:
                    source.close()
                    source = sqlite3.connect(copy, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
        except sqlite3.Error:
            log.warning("quarantined spool %s cannot be opened for salvage", path, exc_info=True)
            return False
        try:
            with self._patient(dest):
                integrity.salvage(source, dest, source_key=integrity.source_id(source, identity),
                                  event="quarantined", path=path)
        finally:
            source.close()
            if copy is not None:
                integrity.remove_copy(copy)
        return True

    @contextmanager
    def _patient(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Salvage waits for the spool lock as long as opening does (``setup_busy_timeout_ms``), not the request
        path's few milliseconds: it runs once per damaged file, and giving up would strand that file's events while
        the other writers keep the lock busy."""
        if self.busy_timeout_ms == self.setup_busy_timeout_ms:
            yield
            return
        conn.execute(f"PRAGMA busy_timeout = {self.setup_busy_timeout_ms}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")

    def reconcile(self) -> list[integrity.SourceRecord]:
        """Bring in what other processes left outside the spool: rows a slow writer added to a quarantined file after
        its salvage, salvages that failed earlier, and drop counts written at exit to ``<spool>.drops`` while the spool
        was unwritable. Returns the registry of salvaged files (``flush-spool --status`` shows it). The flush and
        ``--status`` call this."""
        self.salvage_retired()
        conn = self.connection()
        while self._orphans:
            old = self._orphans.pop()
            integrity.salvage(old, conn, source_key=integrity.source_id(old, None), event="replaced", path=None)
            old.close()
        self._retry_listed(conn)
        for record in integrity.registry(conn):
            if record.event != "quarantined" or not record.path:
                continue
            try:
                st = os.stat(record.path)
            except OSError:
                continue
            if (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns) or _wal_newer(record):
                self._salvage_file(Path(record.path), conn, (st.st_dev, st.st_ino))
        self._absorb_side_drops(conn)
        return integrity.registry(conn)

    def _retry_listed(self, conn: sqlite3.Connection) -> None:
        """Salvage the files on the persistent retry list (failed salvages of any process, dead or alive); a copy
        made for the list (``.orphan-``) is deleted once salvaged."""
        for listed in integrity.listed_for_retry(self.path):
            if listed.exists():
                try:
                    if not self._salvage_file(listed, conn, None):
                        continue
                except Exception:  # noqa: BLE001 - stays listed for the next reconcile
                    log.warning("salvage of %s failed again; retried later", listed, exc_info=True)
                    continue
                if ".orphan-" in listed.name:
                    integrity.remove_copy(listed)
            integrity.drop_from_retry(self.path, listed)

    def _absorb_side_drops(self, conn: sqlite3.Connection) -> None:
        side = drops_file(self.path)
        try:
            size = os.path.getsize(side)
        except OSError:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'drops.offset'").fetchone()
            offset = int(row[0]) if row else 0
            if size > offset:
                with open(side, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read(size - offset)
                complete = data[: data.rfind(b"\n") + 1]  # a line still being written is taken next time
                total = sum(int(line) for line in complete.split() if line.isdigit())
                if total:
                    conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                                 "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                                 (DROPPED_COUNTER, total))
                conn.execute("INSERT INTO meta (key, value) VALUES ('drops.offset', ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(offset + len(complete)),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ----- the request path ----------------------------------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Insert one event and commit it (durable when this returns). A corrupt file is quarantined and the insert retried."""
        try:
            self.connection().execute(_INSERT, event)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            self.recover(exc)
            self.connection().execute(_INSERT, event)

    def append_until(self, event: Event, deadline: float) -> None:
        """:meth:`append` retried in attempts of :data:`REQUEST_TAIL_POLL_MS` while the lock is taken, until
        ``deadline`` (``time.monotonic()``); then the last ``SQLITE_BUSY`` is raised."""
        conn: sqlite3.Connection | None = None
        try:
            while True:
                current = self.connection()
                if current is not conn:  # first attempt, or the file was followed and the connection is new
                    conn = current
                    conn.execute(f"PRAGMA busy_timeout = {REQUEST_TAIL_POLL_MS}")
                try:
                    self.append(event)
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                        raise
        finally:
            current = getattr(self._local, "conn", None)
            if current is not None:
                current.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")

    # ----- reading -------------------------------------------------------------------------------------------------

    @survives_corruption
    def rows(self, *, session_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Events in insertion order as dicts of the event fields (the newest ``limit`` when given)."""
        where, params = ("WHERE session_id = ?", [session_id]) if session_id is not None else ("", [])
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM {TABLE} {where} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        cursor = self.connection().execute(sql, params)
        return [dict(zip(EVENT_COLUMNS, row)) for row in reversed(cursor.fetchall())]

    @survives_corruption
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

    @survives_corruption
    def natural_key_ordinals(self, seqs: list[int]) -> list[int]:
        """For each row ``seq`` (in the given order): 1 + the number of rows before it (lower seq) with the same
        ``(timestamp, app_name, user, action)`` - so distinct events sharing that key get 1, 2, ... (the legacy
        four-column table tells them apart only by count)."""
        rows = dict(self.connection().execute(
            f"SELECT e.seq, 1 + (SELECT COUNT(*) FROM {TABLE} AS p WHERE p.app_name = e.app_name "
            f"  AND substr(p.timestamp, 1, 10) = substr(e.timestamp, 1, 10) AND p.user = e.user "
            f"  AND p.action = e.action AND p.timestamp = e.timestamp AND p.seq < e.seq) "
            f"FROM {TABLE} AS e WHERE e.seq IN (SELECT value FROM json_each(?))",
            (json.dumps([int(s) for s in seqs]),)).fetchall())
        return [int(rows.get(seq, 1)) for seq in seqs]

    # ----- counters and metadata -----------------------------------------------------------------------------------

    @survives_corruption
    def add_to_counter(self, name: str, amount: int) -> None:
        """Persistently add ``amount`` to the counter ``name`` (e.g. events dropped while the spool was unwritable)."""
        self.connection().execute(_COUNTER_UPSERT, (name, int(amount)))

    @survives_corruption
    def counters(self) -> dict[str, int]:
        """All persistent counters."""
        return dict(self.connection().execute("SELECT name, value FROM counters"))

    @survives_corruption
    def set_meta(self, key: str, value: str | None) -> None:
        """Store a small piece of state (e.g. the last flush result)."""
        self.connection().execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @survives_corruption
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


def drops_file(spool_path: Path) -> Path:
    """``<spool>.drops``: drop counts a process could not put into the spool before it exited, one number a line."""
    return Path(f"{spool_path}.drops")


def record_drops_outside(spool_path: Path, count: int) -> bool:
    """Append ``count`` dropped events to :func:`drops_file` (one small ``O_APPEND`` write: no lock, no wait).
    Returns False when even that is impossible."""
    try:
        fd = os.open(drops_file(spool_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        os.write(fd, f"{int(count)}\n".encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _schema_readable(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return True
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        return False


def _wal_newer(record: integrity.SourceRecord) -> bool:
    try:
        return os.stat(f"{record.path}-wal").st_mtime_ns > (record.mtime_ns or 0)
    except OSError:
        return False
