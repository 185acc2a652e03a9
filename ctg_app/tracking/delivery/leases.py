"""The spool's delivery protocol: claim under a lease, ack, release with backoff, dead-letter, purge, cap, status.

Every verb is one short SQLite transaction on the spool's ``events`` table (the bookkeeping columns of
``spool._migration_1``), so any number of flushers (the ``flush-spool`` command, background flusher threads, in any
process) can share one spool:

- :meth:`Delivery.claim` leases the oldest due rows to one owner until ``lease_expires_at``; nobody else claims them
  until the lease expires (a crashed flusher's rows come back by themselves).
- :meth:`Delivery.ack` marks rows delivered - called only after the warehouse confirmed - and only while the caller
  still holds their lease.
- :meth:`Delivery.release` gives rows back after a failure: ``attempts + 1``, next try after an exponential backoff
  with jitter. :meth:`Delivery.dead` parks rows the warehouse refused for good; :meth:`Delivery.retry_dead` replays them.
- Undelivered rows are deleted only by :meth:`Delivery.enforce_cap`, and every such row is counted (``dropped_cap``)
  and logged. :meth:`Delivery.purge` deletes delivered rows only.

Times: leases and retry times are Unix seconds from ``time.time()``; ``delivered_at`` is the spool's UTC text form.
Both follow freezegun in tests.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ctg_app.tracking.delivery.backoff import SPOOL_RETRY, Backoff
from ctg_app.tracking.delivery.sink import Batch
from ctg_app.tracking.recording.event import EVENT_COLUMNS, format_timestamp, utc_now
from ctg_app.tracking.recording.integrity import CORRUPT_COUNTER
from ctg_app.tracking.recording.spool import (
    DROPPED_COUNTER,
    STATE_DEAD,
    STATE_DELIVERED,
    STATE_PARKED,
    STATE_PENDING,
    TABLE,
    Spool,
    survives_corruption,
)

log = logging.getLogger(__name__)

CAP_COUNTER = "dropped_cap"  # undelivered rows deleted by the size cap (persistent)
CAP_CHUNK_ROWS = 200  # rows the size cap deletes per transaction (a few ms of the write lock)
META_LAST_SUCCESS = "flush.last_success_at"
META_LAST_DELIVERED = "flush.last_delivered"
META_LAST_ERROR = "flush.last_error"
META_LAST_ERROR_AT = "flush.last_error_at"
#: "<spool file id>:<seq>": every row up to seq may have been sent to a legacy four-column table (see
#: :meth:`Delivery.legacy_watermark`).
META_LEGACY_SENT = "flush.legacy_sent_up_to"

_COLUMNS = ", ".join(EVENT_COLUMNS)
_SEQS = "seq IN (SELECT value FROM json_each(:seqs))"
_COUNTER_UPSERT = ("INSERT INTO counters (name, value) VALUES (?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")
#: The longest lease a claim grants. A lease ending later than now + this, like a retry time later than now + the
#: longest backoff, was set under a clock that ran ahead (and was corrected since): it is treated as expired, so a
#: clock jump can strand nothing for longer than this.
MAX_LEASE_S = 3600.0
#: The one "due now" predicate (claim, due_count, status): pending, its retry time reached (``:due``, which is
#: ``:now`` or +inf to ignore backoff) and no live lease - where a retry time or lease beyond its horizon
#: (``:retry_horizon`` = now + the backoff cap, ``:lease_horizon`` = now + :data:`MAX_LEASE_S`) counts as reached.
_DUE = (f"state = '{STATE_PENDING}' AND (next_attempt_at <= :due OR next_attempt_at > :retry_horizon) "
        "AND (lease_expires_at IS NULL OR lease_expires_at <= :now OR lease_expires_at > :lease_horizon)")
_LEASED = "COALESCE(lease_expires_at > :now AND lease_expires_at <= :lease_horizon, 0)"


@dataclass(frozen=True)
class CapResult:
    """What :meth:`Delivery.enforce_cap` deleted."""

    purged_delivered: int = 0
    dropped_undelivered: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


class Delivery:
    """The delivery verbs on one :class:`Spool` (thread-safe: each thread uses its own spool connection)."""

    def __init__(self, spool: Spool, *, backoff: Backoff = SPOOL_RETRY) -> None:
        self.spool = spool
        self.backoff = backoff

    def _due_params(self, now: float, ignore_backoff: bool) -> dict[str, float]:
        """Parameters of :data:`_DUE` at ``now``."""
        retry_horizon = now + self.backoff.cap * self.backoff.jitter_high + 1.0
        return {"now": now, "due": float("inf") if ignore_backoff else now, "retry_horizon": retry_horizon,
                "lease_horizon": now + MAX_LEASE_S + 1.0}

    # ----- claiming and settling -----------------------------------------------------------------------------------

    @survives_corruption
    def claim(self, owner: str, limit: int, lease_seconds: float, *, ignore_backoff: bool = False,
              encoding_sql: str | None = None) -> Batch:
        """Lease up to ``limit`` due pending rows (oldest first) to ``owner`` for ``lease_seconds``; returns them in order.

        Due means ``next_attempt_at <= now`` (unless ``ignore_backoff``) and no live lease. Runs under
        ``BEGIN IMMEDIATE``, so two flushers never get the same row while its lease lives. ``encoding_sql``, a trusted
        SQL expression over the event columns chosen by the sink (its wire form, e.g. ``json_object(...)``; see
        ``Sink.encoding_sql``), is evaluated by SQLite for each row into :attr:`Batch.texts` - much faster than
        encoding in Python.
        """
        now = time.time()
        extra = f", {encoding_sql}" if encoding_sql else ""
        file_id = self.spool.file_id
        with self.spool.transaction("IMMEDIATE") as conn:
            rows = conn.execute(
                f"UPDATE {TABLE} SET lease_owner = :owner, lease_expires_at = :until "
                f"WHERE seq IN (SELECT seq FROM {TABLE} WHERE {_DUE} ORDER BY seq LIMIT :limit) "
                f"RETURNING seq, attempts{extra}, {_COLUMNS}",
                {"owner": owner, "until": now + min(float(lease_seconds), MAX_LEASE_S), "limit": int(limit),
                 **self._due_params(now, ignore_backoff)},
            ).fetchall()
        if not rows:
            return Batch()
        rows.sort()
        seqs, attempts, *rest = zip(*rows)
        if encoding_sql:
            texts, *rest = rest
        events = list(zip(*rest)) if len(rest) == len(EVENT_COLUMNS) else []
        return Batch(list(seqs), list(attempts), events, list(texts) if encoding_sql else None, file_id)

    @survives_corruption
    def due_count(self, *, ignore_backoff: bool = False, limit: int | None = None) -> int:
        """Pending rows that a claim would take now (stops counting at ``limit``)."""
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {TABLE} WHERE {_DUE}" + (" LIMIT :limit" if limit else "") + ")"
        params: dict[str, Any] = {**self._due_params(time.time(), ignore_backoff), "limit": limit}
        return int(self.spool.connection().execute(sql, params).fetchone()[0])

    def _settle(self, owner: str, seqs: Iterable[int], assignments: str, file_id: str | None = None,
                **params: Any) -> int:
        """The one shape of ack/unlease/release/dead: ``SET assignments`` (and drop the lease) on the given rows
        that ``owner`` still holds, in one transaction. Returns the number of rows changed. Rows claimed from
        another spool file (``file_id``: since quarantined or replaced, its rows were salvaged unleased and
        renumbered) are left alone: 0."""
        if file_id is not None and file_id != self.spool.file_id:
            return 0
        with self.spool.transaction("IMMEDIATE") as conn:
            return conn.execute(
                f"UPDATE {TABLE} SET {assignments}lease_owner = NULL, lease_expires_at = NULL "
                f"WHERE {_SEQS} AND lease_owner = :owner AND state = '{STATE_PENDING}'",
                {"seqs": _json_list(seqs), "owner": owner, **params},
            ).rowcount

    @survives_corruption
    def ack(self, owner: str, seqs: Iterable[int], *, file_id: str | None = None) -> int:
        """Mark rows delivered (the warehouse has confirmed them); only rows still leased by ``owner``. Returns the count."""
        return self._settle(owner, seqs, f"state = '{STATE_DELIVERED}', delivered_at = :at, last_error = NULL, ",
                            at=format_timestamp(utc_now()), file_id=file_id)

    @survives_corruption
    def unlease(self, owner: str, seqs: Iterable[int], *, file_id: str | None = None) -> int:
        """Give leased rows back untouched (claimed but never sent, e.g. when a run stops early): due again at once."""
        return self._settle(owner, seqs, "", file_id=file_id)

    @survives_corruption
    def release(self, owner: str, seqs: Iterable[int], error: str, retry_at: float | None = None, *,
                file_id: str | None = None) -> int:
        """Give leased rows back after a failure: ``attempts + 1``, ``last_error``, next try at ``retry_at`` or, when
        None, after :attr:`backoff` (base 2 s, cap 10 min) with one jitter factor for the whole batch."""
        return self._settle(
            owner, seqs,
            "attempts = attempts + 1, last_error = :error, "
            f"next_attempt_at = COALESCE(:retry_at, :now + {self.backoff.sql('attempts')} * :backoff_jitter), ",
            error=error[:1000], now=time.time(), retry_at=retry_at, file_id=file_id,
            **self.backoff.sql_params(),
        )

    @survives_corruption
    def dead(self, owner: str, seqs: Iterable[int], reason: str, *, file_id: str | None = None) -> int:
        """Dead-letter leased rows the warehouse refused for good, with the reason (see :meth:`retry_dead`)."""
        return self._settle(owner, seqs, f"state = '{STATE_DEAD}', attempts = attempts + 1, last_error = :reason, ",
                            reason=reason[:1000], file_id=file_id)

    @survives_corruption
    def retry_dead(self) -> int:
        """Put every dead-lettered row back to pending, due now. Returns the count."""
        with self.spool.transaction("IMMEDIATE") as conn:
            return conn.execute(
                f"UPDATE {TABLE} SET state = '{STATE_PENDING}', next_attempt_at = 0, lease_owner = NULL, "
                f"lease_expires_at = NULL WHERE state = '{STATE_DEAD}'"
            ).rowcount

    # ----- retention and the size cap ------------------------------------------------------------------------------

    @survives_corruption
    def purge(self, older_than: datetime | timedelta) -> int:
        """Delete delivered rows delivered before ``older_than`` (a moment, or an age such as ``timedelta(days=7)``)."""
        cutoff = utc_now() - older_than if isinstance(older_than, timedelta) else older_than
        with self.spool.transaction("IMMEDIATE") as conn:
            count = conn.execute(
                f"DELETE FROM {TABLE} WHERE state = '{STATE_DELIVERED}' AND delivered_at < ?",
                (format_timestamp(cutoff),),
            ).rowcount
        if count:
            log.info("purged %d delivered events older than %s", count, format_timestamp(cutoff))
        return count

    def used_bytes(self) -> int:
        """Bytes the spool's rows need: per table and index, the bytes in use on its pages rounded up to whole pages
        (SQLite's ``dbstat``; a read, so no writer waits on it). Pages left partly empty by deletions, and free pages,
        which SQLite reuses, do not count. Without ``dbstat``: the pages in use."""
        conn = self.spool.connection()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            per_tree = conn.execute("SELECT SUM(pgsize - unused) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:  # SQLite built without the dbstat table
            pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
            return pages * page_size
        return sum(-(-int(used or 0) // page_size) * page_size for (used,) in per_tree)

    @survives_corruption
    def enforce_cap(self, max_bytes: int) -> CapResult:
        """Keep the spool under ``max_bytes``, dropping only what it must.

        Bytes are measured as :meth:`used_bytes` (what the rows need, a read), so deletions need no ``REINDEX``:
        that held the write lock for seconds on a large spool, longer than a tracked call waits
        (``TRACKING_REQUEST_LOCK_WAIT_MS``), so every event recorded meanwhile was dropped. Rows are deleted at most
        :data:`CAP_CHUNK_ROWS` per transaction. The oldest delivered rows go first; if still over, the oldest
        undelivered rows (pending or dead) - never rows another flusher holds a live lease on (they are on the wire
        and may well be delivered) - each counted persistently in ``counters.dropped_cap``, in the same transaction
        that deletes it, and logged at WARNING.
        """
        before = self.used_bytes()
        if before <= max_bytes:
            return CapResult(bytes_before=before, bytes_after=before)
        # parked rows are safe in their segment on the park volume: local copies, as delivered ones are
        purged = self._shrink(max_bytes, f"state IN ('{STATE_DELIVERED}', '{STATE_PARKED}')")
        dropped = 0
        if self.used_bytes() > max_bytes:
            dropped = self._shrink(max_bytes, f"state IN ('{STATE_PENDING}', '{STATE_DEAD}') AND NOT {_LEASED}",
                                   counter=CAP_COUNTER)
        after = self.used_bytes()
        if dropped:
            log.warning("spool over its size cap (%d > %d bytes): dropped the %d oldest UNDELIVERED events "
                        "(counted in dropped_cap); deliver more often or raise SPOOL_MAX_MB", before, max_bytes, dropped)
        if purged:
            log.info("spool over its size cap: purged the %d oldest delivered events", purged)
        if after > max_bytes:
            log.warning("spool still over its size cap (%d > %d bytes): the rest is in flight or too little to drop",
                        after, max_bytes)
        return CapResult(purged, dropped, before, after)

    def _shrink(self, max_bytes: int, where: str, counter: str | None = None) -> int:
        deleted = 0
        for _ in range(8):  # each round deletes the measured excess; the next measures again
            used = self.used_bytes()
            if used <= max_bytes:
                break
            conn = self.spool.connection()
            total = conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
            per_row = used / max(total, 1)
            excess = max(1, -(-(used - max_bytes) // max(1, int(per_row))))
            count = 0
            while count < excess:  # short transactions: a tracked call never waits long for the lock
                began = time.monotonic()
                with self.spool.transaction("IMMEDIATE") as conn:
                    step = conn.execute(
                        f"DELETE FROM {TABLE} WHERE seq IN (SELECT seq FROM {TABLE} WHERE {where} ORDER BY seq "
                        f"LIMIT :n)", {"n": min(CAP_CHUNK_ROWS, excess - count), **self._due_params(time.time(), False)},
                    ).rowcount
                    if counter and step:
                        conn.execute(_COUNTER_UPSERT, (counter, step))
                count += step
                if step == 0:
                    break
                # leave the lock free as long as it was held: writers waiting in SQLite's busy handler (which
                # polls at growing intervals) find it free instead of starving behind back-to-back chunks
                time.sleep(max(0.001, time.monotonic() - began))
            deleted += count
            if count == 0:
                break
        return deleted

    # ----- the legacy four-column table ----------------------------------------------------------------------------

    def note_legacy_send(self, seqs: Iterable[int]) -> None:
        """Remember, before sending them, that rows up to ``max(seqs)`` go to a legacy table (without event_id)."""
        top = max(seqs)
        current = self.legacy_watermark()
        if current is None or (current != float("inf") and top > current):
            self.spool.set_meta(META_LEGACY_SENT, f"{self.spool.file_id}:{top}")

    def legacy_watermark(self) -> float | None:
        """The highest seq that may sit in the table in legacy form (no event_id) without having been acked, or None.
        Infinite when it was noted for another spool file (quarantined or replaced since: seqs were renumbered)."""
        value = self.spool.meta().get(META_LEGACY_SENT)
        if not value:
            return None
        file_id, _, seq = value.rpartition(":")
        return float(seq) if file_id == self.spool.file_id else float("inf")

    def settle_legacy_watermark(self) -> None:
        """Forget the watermark once every row up to it is delivered: re-sends are keyed on event_id alone again."""
        mark = self.legacy_watermark()
        if mark is None:
            return
        undelivered = self.spool.connection().execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE state != '{STATE_DELIVERED}' AND seq <= ?",
            (mark if mark != float("inf") else 1 << 62,)).fetchone()[0]
        if not undelivered:
            self.spool.set_meta(META_LEGACY_SENT, None)

    # ----- reporting -----------------------------------------------------------------------------------------------

    def record_success(self, delivered: int) -> None:
        """Remember the last successful flush (for ``--status``)."""
        self.spool.set_meta(META_LAST_SUCCESS, format_timestamp(utc_now()))
        self.spool.set_meta(META_LAST_DELIVERED, str(delivered))

    def record_error(self, message: str) -> None:
        """Remember the last flush error (an operator message, already free of secrets)."""
        self.spool.set_meta(META_LAST_ERROR, message[:500])
        self.spool.set_meta(META_LAST_ERROR_AT, format_timestamp(utc_now()))

    @survives_corruption
    def status(self) -> dict[str, Any]:
        """The spool's delivery status (what ``flush-spool --status`` shows). Keys:

        ``spool_path``, ``spool_bytes``, ``pending``, ``due_now``, ``leased``, ``oldest_pending_at``,
        ``oldest_pending_age_s``, ``delivered``, ``dead``, ``dead_reasons`` (list of ``{"reason", "count"}``),
        ``dropped`` (= ``dropped_unwritable`` + ``dropped_cap`` + ``dropped_corrupt``), ``dropped_unwritable``,
        ``dropped_cap``, ``dropped_corrupt`` (undelivered events in unreadable parts of a corrupt spool),
        ``spool_files`` (every spool file quarantined, replaced or deleted under a running process, with the events
        salvaged from it and those that could not be read; see :mod:`~ctg_app.tracking.recording.integrity`),
        ``last_success_at``, ``last_delivered``, ``last_error``, ``last_error_at``.
        """
        files = self.spool.reconcile()
        conn = self.spool.connection()
        now = time.time()
        counts = self.spool.counts()
        due, leased = conn.execute(
            f"SELECT COALESCE(SUM({_DUE}), 0), COALESCE(SUM({_LEASED}), 0) "
            f"FROM {TABLE} WHERE state = '{STATE_PENDING}'",
            self._due_params(now, False),
        ).fetchone()
        oldest = conn.execute(
            f"SELECT timestamp FROM {TABLE} WHERE state = '{STATE_PENDING}' ORDER BY seq LIMIT 1"
        ).fetchone()
        reasons = conn.execute(
            f"SELECT last_error, COUNT(*) FROM {TABLE} WHERE state = '{STATE_DEAD}' GROUP BY last_error "
            f"ORDER BY COUNT(*) DESC LIMIT 10"
        ).fetchall()
        counters = self.spool.counters()
        meta = self.spool.meta()
        oldest_at = oldest[0] if oldest else None
        age = None
        if oldest_at:
            moment = datetime.fromisoformat(oldest_at).replace(tzinfo=timezone.utc)
            age = round(max(0.0, (utc_now() - moment).total_seconds()), 1)
        unwritable = int(counters.get(DROPPED_COUNTER, 0))
        cap = int(counters.get(CAP_COUNTER, 0))
        corrupt = int(counters.get(CORRUPT_COUNTER, 0))
        return {
            "spool_path": str(self.spool.path),
            "spool_bytes": self.used_bytes(),
            "pending": counts[STATE_PENDING],
            "due_now": int(due),
            "leased": int(leased),
            "oldest_pending_at": oldest_at,
            "oldest_pending_age_s": age,
            "delivered": counts[STATE_DELIVERED],
            "dead": counts[STATE_DEAD],
            "dead_reasons": [{"reason": r or "", "count": c} for r, c in reasons],
            "dropped": unwritable + cap + corrupt,
            "dropped_unwritable": unwritable,
            "dropped_cap": cap,
            "dropped_corrupt": corrupt,
            "spool_files": [
                {"event": f.event, "path": f.path, "at": f.at, "salvaged": f.salvaged,
                 "unreadable": f.lost_undelivered + f.unreadable_delivered, "unreadable_undelivered": f.lost_undelivered,
                 "unreadable_file": f.unreadable_file}
                for f in files
            ],
            "last_success_at": meta.get(META_LAST_SUCCESS),
            "last_delivered": int(meta[META_LAST_DELIVERED]) if meta.get(META_LAST_DELIVERED) else None,
            "last_error": meta.get(META_LAST_ERROR),
            "last_error_at": meta.get(META_LAST_ERROR_AT),
        }




def _json_list(seqs: Iterable[int]) -> str:
    return json.dumps([int(s) for s in seqs], separators=(",", ":"))
