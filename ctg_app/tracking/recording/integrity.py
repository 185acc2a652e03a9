"""The spool's integrity protocol: one way for writers, the flush and ``--status`` to handle a corrupt, moved,
replaced or deleted spool file, safe across processes.

- **Identity.** Every spool connection remembers the (device, inode) of the file it opened; before each use the path
  is looked at again (one ``stat``). A different file, or none, means someone quarantined, replaced or deleted it:
  the connection is switched to the file now at the path (created if missing) and the rows of the old file, which
  the old connection still reads, are **salvaged** into it.
- **Quarantine.** A connection that finds its file corrupt (SQLite result code ``SQLITE_CORRUPT`` / ``SQLITE_NOTADB``)
  moves it aside to ``<spool>.corrupt-<UTC stamp>`` - under an exclusive lock on ``<spool>.lock`` and only if the
  path still names the very file found corrupt (another process may have replaced it already). Connections are
  opened under the shared lock, so nobody opens the path between the moves of the file and its ``-wal``/``-shm``.
- **Salvage.** Readable rows are copied into the live spool in chunks, each one transaction that also advances a
  per-source watermark (the source's highest copied ``seq``, kept in the live spool's ``meta``), so any number of
  processes can salvage the same source without copying a row twice, and rows a slow writer adds to a moved file
  later are picked up by the next pass (``flush-spool`` and ``--status`` re-scan quarantined files that changed).
  Leases are cleared and retry times reset: salvaged rows are due at once. Ranges that cannot be read are skipped
  and counted by state from the spool's ``(state, seq)`` index when that is readable (else as "state unknown").
- **Report.** Each source gets one registry entry (``meta`` key ``integrity.source.<id>``): what happened
  (``quarantined`` / ``replaced`` / ``deleted``), when, its path, rows salvaged and rows unreadable.
  ``flush-spool --status`` lists them; undelivered unreadable rows count as ``dropped_corrupt``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ctg_app.tracking.recording.event import EVENT_COLUMNS, STATE_DELIVERED, STATES

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: cross-process safety then rests on the identity checks alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

META_ID = "spool.id"
REGISTRY_PREFIX = "integrity.source."
CORRUPT_COUNTER = "dropped_corrupt"  # undelivered events lost in unreadable parts of a corrupt spool
CHUNK_ROWS = 2000
_CORRUPT_NAMES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_CORRUPT_MARKERS = ("file is not a database", "malformed", "file is encrypted", "not a database")
# Columns copied by a salvage: the event fields and the delivery state (not seq, lease or retry time, which belong
# to the old file).
# A parked row keeps its segment (the park volume's file holding it), or the flush could never settle it.
SALVAGE_COLUMNS = (*EVENT_COLUMNS, "state", "attempts", "last_error", "delivered_at", "parked_segment")
_STATE_AT = len(EVENT_COLUMNS)
_REQUIRED_TEXT = tuple(EVENT_COLUMNS.index(name) for name in ("event_id", "timestamp", "app_name", "user", "action",
                                                              "status", "details"))


def is_corruption(exc: BaseException) -> bool:
    """True when SQLite says the file is damaged or not a database (result code, or the message when it has none)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return name.startswith(_CORRUPT_NAMES)
    if isinstance(exc, sqlite3.OperationalError):  # locked, read-only, disk full: not corruption
        return False
    message = str(exc).lower()
    return any(marker in message for marker in _CORRUPT_MARKERS)


FileIdentity = tuple[int, int]


def identity_of(path: Path) -> FileIdentity | None:
    """(device, inode) of the file at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


@contextmanager
def spool_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    """The cross-process lock on ``<spool>.lock``: shared to open a connection, exclusive to move the file away."""
    if fcntl is None:
        yield
        return
    lock_path = Path(f"{path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def quarantine_file(path: Path, found: FileIdentity | None) -> Path | None:
    """Move the spool file (and its ``-wal``/``-shm``) aside if it is still the file ``found`` corrupt; returns the new
    name, or None when another process moved or replaced it first (then nothing is touched)."""
    with spool_lock(path, exclusive=True):
        if found is None or identity_of(path) != found:
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        os.replace(path, target)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{target}{suffix}"))
    log.warning("spool %s is corrupt: moved it to %s; its readable events are salvaged into a fresh spool",
                path, target)
    return target


def set_aside_orphaned_sidecars(path: Path) -> list[Path]:
    """When the spool file itself was deleted but its ``-wal``/``-shm`` were not, move them aside before anyone
    creates a new file at the path: SQLite would otherwise pair the new file with the deleted one's WAL and
    shared-memory index, which the writers still using the deleted file have mapped (they were killed by SIGBUS when
    the index was reset, and rows went into the wrong file). Renaming does not disturb those writers (they hold the
    inodes open) and they salvage their rows from their own connection when they notice (see the module doc).
    Returns the new names of what was moved."""
    sides = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    if path.exists() or not any(side.exists() for side in sides):
        return []
    moved: list[Path] = []
    with spool_lock(path, exclusive=True):
        if path.exists():  # another process created the new file (after moving them) while we waited
            return []
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        for side, suffix in zip(sides, ("-wal", "-shm")):
            if side.exists():
                target = path.with_name(f"{path.name}.orphaned-{stamp}{suffix}")
                os.replace(side, target)
                moved.append(target)
    if moved:
        log.warning("spool %s was deleted without its WAL/shared-memory files: moved them aside (%s)",
                    path, ", ".join(str(m) for m in moved))
    return moved


def retry_list(path: Path) -> Path:
    """``<spool>.salvage-pending``: files whose salvage failed, one path a line, retried by ``Spool.reconcile`` in any
    later process (the in-memory list dies with the process that failed)."""
    return Path(f"{path}.salvage-pending")


def note_for_retry(path: Path, source: Path) -> None:
    """Add ``source`` to the spool's :func:`retry_list` (one ``O_APPEND`` write)."""
    fd = os.open(retry_list(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (str(source) + "\n").encode())
    finally:
        os.close(fd)


def listed_for_retry(path: Path) -> list[Path]:
    """The files on the spool's :func:`retry_list`, each once, in the order they were noted."""
    try:
        lines = retry_list(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [Path(line) for line in dict.fromkeys(line for line in lines if line.strip())]


def drop_from_retry(path: Path, done: Path) -> None:
    """Remove ``done`` from the spool's :func:`retry_list` (rewritten under the exclusive spool lock)."""
    with spool_lock(path, exclusive=True):
        rest = [p for p in listed_for_retry(path) if p != done]
        target = retry_list(path)
        if not rest:
            target.unlink(missing_ok=True)
            return
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text("".join(f"{p}\n" for p in rest))
        os.replace(tmp, target)


_MAGIC = b"SQLite format 3\x00"
_PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)  # SQLite's default first


def _header(page_size: int, wal: bool) -> bytes:
    """A valid 100-byte database header for a file of ``page_size`` pages (sizes and freelist left for SQLite to
    derive: the in-header page count is ignored when its "valid for" counter does not match)."""
    version = 2 if wal else 1
    header = bytearray(100)
    header[0:16] = _MAGIC
    header[16:18] = (1 if page_size == 65536 else page_size).to_bytes(2, "big")
    header[18], header[19] = version, version
    header[21], header[22], header[23] = 64, 32, 32  # payload fractions (fixed by the format)
    header[24:28] = (1).to_bytes(4, "big")  # change counter; 28..35: page count 0, no freelist
    header[40:44] = (1).to_bytes(4, "big")  # schema cookie
    header[44:48] = (4).to_bytes(4, "big")  # schema format 4
    header[56:60] = (1).to_bytes(4, "big")  # UTF-8
    header[92:96] = (0).to_bytes(4, "big")  # "valid for" 0 != change counter: SQLite uses the file's size
    major, minor, patch = sqlite3.sqlite_version_info
    header[96:100] = (major * 1_000_000 + minor * 1000 + patch).to_bytes(4, "big")
    return bytes(header)


def rebuilt_copy(path: Path) -> Path | None:
    """A copy of the spool file ``path`` (a quarantined one) with its 100-byte header rebuilt, when the header is
    what is damaged: the page size is found by trying each size SQLite allows until the copy's ``events`` table reads.
    Its ``-wal`` is copied along, so rows committed but not checkpointed are read too. Returns the copy's path (the
    caller deletes it with :func:`remove_copy`), or None when no header makes the file readable."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if len(data) < 512:
        return None
    wal = Path(f"{path}-wal")
    wal_bytes = wal.read_bytes() if wal.exists() else b""
    copy = path.with_name(f"{path.name}.rebuilt")
    for page_size in _PAGE_SIZES:
        if len(data) % page_size:
            continue
        remove_copy(copy)
        copy.write_bytes(_header(page_size, bool(wal_bytes)) + data[100:])
        if wal_bytes:
            Path(f"{copy}-wal").write_bytes(wal_bytes)
        try:
            conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True) if not wal_bytes else sqlite3.connect(copy)
            try:
                conn.execute("SELECT seq FROM events ORDER BY seq LIMIT 1").fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            continue
        log.warning("spool file %s had a damaged header: rebuilt it (page size %d) into %s to read its events",
                    path, page_size, copy)
        return copy
    remove_copy(copy)
    return None


def remove_copy(copy: Path) -> None:
    """Delete a :func:`rebuilt_copy` and its WAL/shared-memory files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)


def source_id(conn: sqlite3.Connection, identity: FileIdentity | None) -> str:
    """The id a spool file carries in its ``meta`` (written when it was created), else its device and inode."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_ID,)).fetchone()
        if row and row[0]:
            return str(row[0])
    except sqlite3.DatabaseError:
        pass
    return "inode-%d-%d" % identity if identity else f"unknown-{uuid.uuid4().hex}"


def ensure_id(conn: sqlite3.Connection) -> None:
    """Give a spool file its id (once; a migration step)."""
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (META_ID, uuid.uuid4().hex))


@dataclass
class SourceRecord:
    """The registry entry of one salvaged source file."""

    source: str
    event: str  # quarantined | replaced | deleted
    path: str | None
    at: str
    watermark: int = 0
    salvaged: int = 0
    unreadable_pending: int = 0
    unreadable_dead: int = 0
    unreadable_delivered: int = 0
    unreadable_unknown: int = 0
    unreadable_parked: int = 0
    unreadable_file: bool = False  # nothing at all could be read (count unknown)
    size: int | None = None
    mtime_ns: int | None = None
    # The source's counters (drops) as already added to the live spool. A writer that has not noticed the move yet
    # may count a drop into the old file after its first salvage; each later pass adds what grew since. None: an
    # entry written before this field existed (its counters were added once, at its first pass).
    carried: dict[str, int] | None = None

    @property
    def lost_undelivered(self) -> int:
        """Rows that could not be read and were not known to be delivered."""
        return self.unreadable_pending + self.unreadable_dead + self.unreadable_parked + self.unreadable_unknown


def registry(conn: sqlite3.Connection) -> list[SourceRecord]:
    """Every source ever salvaged into this spool, oldest first."""
    rows = conn.execute("SELECT value FROM meta WHERE key >= ? AND key < ? ORDER BY key",
                        (REGISTRY_PREFIX, REGISTRY_PREFIX + "\uffff")).fetchall()
    records = [SourceRecord(**json.loads(value)) for (value,) in rows]
    return sorted(records, key=lambda r: r.at)


def _load(conn: sqlite3.Connection, source: str) -> SourceRecord | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (REGISTRY_PREFIX + source,)).fetchone()
    return SourceRecord(**json.loads(row[0])) if row else None


def _store(conn: sqlite3.Connection, record: SourceRecord) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (REGISTRY_PREFIX + record.source, json.dumps(asdict(record))))


def _add_counter(conn: sqlite3.Connection, name: str, amount: int) -> None:
    if amount:
        conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, int(amount)))


def salvage(source: sqlite3.Connection, dest: sqlite3.Connection, *, source_key: str, event: str,
            path: Path | None) -> SourceRecord:
    """Copy the readable rows of ``source`` above its watermark into ``dest`` (both open connections; ``dest`` in
    autocommit mode), chunk by chunk; count what cannot be read. Returns the source's registry entry."""
    first_pass = True
    columns = _select_list(source)
    while True:
        dest.execute("BEGIN IMMEDIATE")
        try:
            record = _load(dest, source_key)
            if record is None:
                record = SourceRecord(source_key, event, str(path) if path else None,
                                      datetime.now(timezone.utc).isoformat(timespec="seconds"), carried={})
            if first_pass:
                _carry_counters(source, dest, record)
                _adopt_registry(source, dest, source_key)
            if event == "quarantined" and record.event != event:  # a follower got here before the quarantiner
                record.event, record.path = event, str(path) if path else record.path
            if first_pass and path is not None:
                try:
                    st = os.stat(path)
                    record.size, record.mtime_ns = st.st_size, st.st_mtime_ns
                except OSError:
                    pass
            first_pass = False
            rows, next_mark, skipped = _read_chunk(source, record.watermark, columns)
            if rows is None:  # nothing at all is readable (the caller may retry on a rebuilt copy)
                record.unreadable_file = True
                _store(dest, record)
                dest.execute("COMMIT")
                return record
            record.unreadable_file = False
            if rows:
                dest.executemany(
                    f"INSERT INTO events ({', '.join(SALVAGE_COLUMNS)}, next_attempt_at) "
                    f"VALUES ({', '.join('?' * len(SALVAGE_COLUMNS))}, 0)", rows)
            record.salvaged += len(rows)
            for state, count in skipped.items():
                setattr(record, f"unreadable_{state}", getattr(record, f"unreadable_{state}") + count)
                if state != STATE_DELIVERED:
                    _add_counter(dest, CORRUPT_COUNTER, count)
            done = next_mark == record.watermark
            record.watermark = next_mark
            _store(dest, record)
            dest.execute("COMMIT")
        except BaseException:
            dest.execute("ROLLBACK")
            raise
        if done:
            return record


def _adopt_registry(source: sqlite3.Connection, dest: sqlite3.Connection, own_key: str) -> None:
    """The source's own registry (files salvaged into it before) moves into the destination with its rows: the rows
    up to each entry's watermark arrive here too, so a later salvage of one of those files (a copy on the retry list,
    another process's connection to it) into this file continues from there instead of copying them twice."""
    try:
        records = registry(source)
    except (sqlite3.DatabaseError, TypeError, ValueError):
        return
    for theirs in records:
        if theirs.source == own_key:
            continue
        mine = _load(dest, theirs.source)
        if mine is None:
            _store(dest, theirs)
        elif theirs.watermark > mine.watermark or any(
                v > (mine.carried or {}).get(k, 0) for k, v in (theirs.carried or {}).items()):
            mine.watermark = max(mine.watermark, theirs.watermark)
            if theirs.carried:
                ours = mine.carried or {}
                mine.carried = {k: max(theirs.carried.get(k, 0), ours.get(k, 0))
                                for k in theirs.carried.keys() | ours.keys()}
            _store(dest, mine)


def _carry_counters(source: sqlite3.Connection, dest: sqlite3.Connection, record: SourceRecord) -> None:
    """Add to the destination's counters what the source's persistent counters (drops) gained since the last pass
    (``record.carried``; all of them on the first). Counters only grow, so a pass reading an older snapshot of the
    source (another process's connection) adds nothing."""
    try:
        counters = source.execute("SELECT name, value FROM counters").fetchall()
    except sqlite3.DatabaseError:
        return
    legacy = record.carried is None  # added once already, up to an unknown value: take today's as the baseline
    carried = dict(record.carried or {})
    for name, value in counters:
        if isinstance(name, str) and isinstance(value, int):
            if not legacy and value > carried.get(name, 0):
                _add_counter(dest, name, value - carried.get(name, 0))
            carried[name] = max(value, carried.get(name, 0))
    record.carried = carried


# ">= mark + 1", not "> mark": the same seek as _probe, so a start found readable is read from the same page.
_SELECT = "SELECT seq, {columns} FROM events WHERE seq >= ? ORDER BY seq LIMIT ?"


def _select_list(source: sqlite3.Connection) -> str:
    """The salvaged columns as the source can give them: a file of an older schema lacks the newer columns (NULL)."""
    try:
        present = {row[1] for row in source.execute("PRAGMA table_info(events)")}
    except sqlite3.DatabaseError:
        present = set()
    if not present:  # unreadable schema: ask for every column and let the reads fail or succeed
        present = set(SALVAGE_COLUMNS)
    return ", ".join(name if name in present else f"NULL AS {name}" for name in SALVAGE_COLUMNS)
_MAX_SEQ = 1 << 62


def _read_chunk(source: sqlite3.Connection, after: int, columns: str) -> tuple[list[tuple[Any, ...]] | None, int, dict[str, int]]:
    """Up to ``CHUNK_ROWS`` valid rows after seq ``after``, skipping unreadable ranges. Returns (rows without seq, the
    new watermark, unreadable counts by state); rows is None when nothing at all can be read."""
    skipped: dict[str, int] = {}
    rows: list[tuple[Any, ...]] = []
    mark = after
    careful = False  # after an error: one row at a time until past the damage
    while len(rows) < CHUNK_ROWS:
        try:
            batch = source.execute(_SELECT.format(columns=columns), (mark + 1, 1 if careful else CHUNK_ROWS - len(rows))).fetchall()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            if after == 0 and mark == 0 and not rows and _probe(source, 0, columns) is False and _max_seq(source) is None:
                return None, after, skipped
            if not careful:
                careful = True
                continue
            resume = _next_readable(source, mark, columns)
            if resume is not None and resume <= mark + 1:  # the row at mark + 1 itself failed: step over it
                resume = mark + 2
            _count_unreadable(source, mark, resume if resume is not None else _MAX_SEQ, skipped)
            if resume is None:
                mark = max(mark, _max_seq(source) or mark)
                break
            mark, careful = resume - 1, False
            continue
        if not batch:
            break
        for row in batch:
            seq, values = row[0], row[1:]
            if not isinstance(seq, int) or seq <= mark:
                continue  # garbage from a damaged page
            if _valid(values):
                rows.append(values)
            else:
                skipped["unknown"] = skipped.get("unknown", 0) + 1
            mark = seq
    return rows, mark, skipped


def _valid(values: tuple[Any, ...]) -> bool:
    """A row from a damaged page may be garbage: the NOT NULL text fields must be text, the state known."""
    state, attempts = values[_STATE_AT], values[_STATE_AT + 1]
    return (all(isinstance(values[i], str) for i in _REQUIRED_TEXT) and state in STATES
            and isinstance(attempts, int))


def _probe(source: sqlite3.Connection, at_least: int, columns: str) -> int | None | bool:
    """The first seq >= ``at_least`` if its row can be read; None when there is none; False when unreadable."""
    try:
        row = source.execute(_SELECT.format(columns=columns), (at_least, 1)).fetchone()
    except sqlite3.DatabaseError:
        return False
    return None if row is None else int(row[0])


def _max_seq(source: sqlite3.Connection) -> int | None:
    try:
        row = source.execute("SELECT max(seq) FROM events").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row and isinstance(row[0], int) else None


def _next_readable(source: sqlite3.Connection, mark: int, columns: str) -> int | None:
    """The smallest seq > ``mark`` from which rows can be read again (galloping, then bisecting), or None."""
    bad, step = mark, 1
    while True:
        x = mark + step
        if x >= _MAX_SEQ:
            return None
        found = _probe(source, x, columns)
        if found is None:
            return None
        if found is not False:
            break
        bad, step = x, step * 2
    lo, hi = bad + 1, x  # the first readable start lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        result = _probe(source, mid, columns)
        if result is False:
            lo = mid + 1
        else:
            hi = mid
            if result is not None:
                found = result
    return int(found)


def _count_unreadable(source: sqlite3.Connection, after: int, before: int, skipped: dict[str, int]) -> None:
    """Count the rows with ``after < seq < before`` by state from the (state, seq) index; unknown if it fails too."""
    if before - after <= 1:
        return
    try:
        for state in STATES:
            count = source.execute(
                "SELECT COUNT(*) FROM events INDEXED BY idx_events_state_seq WHERE state = ? AND seq > ? AND seq < ?",
                (state, after, before)).fetchone()[0]
            if count:
                skipped[state] = skipped.get(state, 0) + count
    except sqlite3.DatabaseError:
        top = _max_seq(source)  # "up to the end" is not 2**62 rows: bound it by the highest seq still known
        if before >= _MAX_SEQ:
            before = (top + 1) if top is not None and top > after else after + 1
        skipped["unknown"] = skipped.get("unknown", 0) + max(0, before - after - 1)
