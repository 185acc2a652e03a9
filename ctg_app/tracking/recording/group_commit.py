"""Group commit on the request path: the threads of one process that record at the same moment share one commit.

A tracked call hands its event to :meth:`GroupCommit.commit`. When no other thread of the process is committing, the
call inserts its event itself, in its own transaction (one statement: the uncontended path is a plain insert). When
one is, the event waits in a queue; as soon as the committing thread is done, one waiting thread takes the whole queue
and writes it in one ``BEGIN IMMEDIATE`` ... ``COMMIT``. Every call returns only after the transaction holding its
event has committed (acknowledged means committed), or raises.

Waiting for SQLite's write lock is left to SQLite's own busy handler, with the connection's ``busy_timeout`` set to
what is left of the earliest deadline in the batch, so no event waits longer than the request-path bound
(``TRACKING_REQUEST_LOCK_WAIT_MS``, counted from when the lock was found taken or the event was queued; the time a
corrupt file takes to be quarantined and salvaged is not lock waiting and does not count); an event whose deadline
passed in the queue fails with
:class:`RequestWaitExceeded` (the recorder's guard counts it as dropped). Fewer, larger transactions mean fewer
writers contending for the lock across processes: that is what keeps many writers near raw SQLite speed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

_PENDING, _DONE, _FAILED = 0, 1, 2
#: The busy timeout is set in steps of this many ms (rounded down), so a steady stream of calls does not issue a
#: ``PRAGMA busy_timeout`` for every one.
BUSY_STEP_MS = 5


class RequestWaitExceeded(TimeoutError):
    """The event waited for its turn to commit longer than the request-path bound; it was not written."""


class _Slot:
    __slots__ = ("event", "deadline", "state", "error")

    def __init__(self, event: tuple[Any, ...], deadline: float) -> None:
        self.event = event
        self.deadline = deadline
        self.state = _PENDING
        self.error: BaseException | None = None


class GroupCommit:
    """One process's commit queue for one spool.

    ``connection`` gives the calling thread's connection (it follows a moved or deleted spool file); ``insert_sql``
    is the prepared insert; ``recover`` quarantines a corrupt file so the write can be retried once on the fresh one;
    ``set_busy_ms`` sets the calling thread's connection busy timeout (and remembers it, to skip needless PRAGMAs)."""

    def __init__(self, *, connection: Callable[[], sqlite3.Connection], insert_sql: str,
                 write_wait_s: float, is_corruption: Callable[[BaseException], bool],
                 recover: Callable[[BaseException], Any], set_busy_ms: Callable[[int], None]) -> None:
        self._connection = connection
        self._insert = insert_sql
        self._wait_s = write_wait_s
        self._is_corruption = is_corruption
        self._recover = recover
        self._set_busy_ms = set_busy_ms
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._queue: list[_Slot] = []
        self._busy = False
        self._waiting = 0

    def commit(self, event: tuple[Any, ...]) -> None:
        """Write ``event`` and return once it is committed; raise if it could not be (within the bound)."""
        deadline = time.monotonic() + self._wait_s
        mutex = self._mutex
        mutex.acquire()
        if not self._busy:  # nobody is committing: try to write it alone, now (the common case, kept short)
            self._busy = True
            mutex.release()
            slot = None
        else:
            try:
                slot = self._wait_in_queue(event, deadline)
            finally:
                mutex.release()
            if slot is None:
                return
        try:
            if slot is None:
                if self._try_alone(event):
                    return
                slot = _Slot(event, time.monotonic() + self._wait_s)  # the bound counts from finding the lock taken
                with mutex:
                    self._queue.insert(0, slot)
            while slot.state == _PENDING:  # a lock wait that timed out leaves later deadlines queued: go again
                self._lead()
                with mutex:
                    if slot.state == _PENDING and slot not in self._queue:  # cannot happen; never spin on it
                        slot.state, slot.error = _FAILED, RuntimeError("event left the commit queue unwritten")
        finally:
            with mutex:
                self._busy = False
                if self._waiting:
                    self._cond.notify_all()
        if slot.state == _FAILED:
            raise slot.error  # type: ignore[misc]

    def _wait_in_queue(self, event: tuple[Any, ...], deadline: float) -> _Slot | None:
        """Queue the event and wait (mutex held) until a committer wrote it (None) or it is this thread's turn to
        lead (its slot, with ``_busy`` taken)."""
        slot = _Slot(event, deadline)
        self._queue.append(slot)
        self._waiting += 1
        try:
            while slot.state == _PENDING and self._busy:
                self._cond.wait()
        finally:
            self._waiting -= 1
        if slot.state == _DONE:
            return None
        if slot.state == _FAILED:
            raise slot.error  # type: ignore[misc]
        self._busy = True
        return slot

    def _try_alone(self, event: tuple[Any, ...]) -> bool:
        """The uncontended case: one autocommit insert that does not wait. False when the write lock is taken."""
        try:
            conn = self._connection()
            self._set_busy_ms(0)
            conn.execute(self._insert, event)
            return True
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # SQLITE_BUSY and its extended codes
                raise
            return False
        except sqlite3.DatabaseError as exc:
            if not self._is_corruption(exc):
                raise
            self._recover_file(exc)
            return False

    def _recover_file(self, exc: BaseException) -> None:
        """Quarantine a corrupt file and salvage it (the spool's ``recover``). That is not waiting for the lock: the
        queued events' deadlines move on by the time it took, as the old file's rows are copied."""
        began = time.monotonic()
        self._recover(exc)
        took = time.monotonic() - began
        with self._cond:
            for s in self._queue:
                s.deadline += took

    def _lead(self) -> None:
        """Wait for the write lock (SQLite's busy handler, bounded by the earliest deadline queued), then write every
        event queued by then in one transaction. Slots past their deadline fail; the rest stay for the next leader
        when the lock could not be had."""
        try:
            self._lead_once()
        except sqlite3.DatabaseError as exc:
            if not self._is_corruption(exc):
                self._fail_all(exc)
                return
            self._recover_file(exc)
            try:
                self._lead_once()
            except BaseException as again:  # noqa: BLE001 - handed to every caller of the batch
                self._fail_all(again)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            self._fail_all(exc)
            raise

    def _lead_once(self) -> None:
        conn = self._connection()
        with self._cond:
            self._expire(time.monotonic())
            if not self._queue:
                return
            left_ms = int((min(s.deadline for s in self._queue) - time.monotonic()) * 1000)
        self._set_busy_ms(max(1, left_ms - left_ms % BUSY_STEP_MS))
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            with self._cond:  # the lock stayed taken: whoever is at its deadline fails; later arrivals stay queued
                self._expire(time.monotonic() + BUSY_STEP_MS / 1000, exc)
            return
        try:
            with self._cond:  # everything queued while this thread waited for the lock goes into its transaction
                batch, self._queue = self._queue, []
            conn.executemany(self._insert, [s.event for s in batch])
            conn.execute("COMMIT")
        except BaseException:
            with self._cond:  # back in the queue first: whatever happens next fails or writes them, never strands them
                self._queue[:0] = batch
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for s in batch:
            s.state = _DONE

    def _expire(self, now: float, reason: BaseException | None = None) -> None:
        """Fail the queued slots whose deadline is before ``now`` (caller holds the condition's lock)."""
        keep = []
        for s in self._queue:
            if s.deadline > now:
                keep.append(s)
            else:
                s.state = _FAILED
                s.error = reason or RequestWaitExceeded("waited past the request-path bound to commit")
        self._queue = keep

    def _fail_all(self, exc: BaseException) -> None:
        with self._cond:
            for s in self._queue:
                s.state, s.error = _FAILED, exc
            self._queue = []
