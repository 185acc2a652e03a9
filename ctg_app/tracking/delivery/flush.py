"""The flush: ship the spool to the central Databricks table, exactly once, through outages, crashes and rivals.

One run (:meth:`Flusher.run`) repeats: claim a batch under a lease -> one ``MERGE`` per ≤1 MB of it -> ack it once
the warehouse confirmed. While one batch is on the wire the next is claimed and encoded (one sender thread), so
local work overlaps the warehouse's. Failures:

- warehouse unreachable / busy / timing out: the batch is released (``attempts + 1``, backoff with jitter) and the
  run stops - the next run or the background flusher tries again;
- credentials rejected, settings missing, table unusable: released, run stops, reported as a configuration error;
- errors are decided by :func:`ctg_app.warehouse.errors.classify_error` (class, HTTP status, SQLSTATE), never by
  message text: a transient server error never dead-letters;
- the warehouse refuses some events for good (e.g. one over the 1 MB statement limit): the batch is split until
  each refused event is alone; only those are dead-lettered, with the reason (``flush-spool --status`` lists them,
  ``--retry-dead`` replays them) - never their batch-mates;
- a table problem (dropped, wrong column types, permissions) pauses delivery as a configuration error (exit 3) with
  the rows due again at once, so the first run after the fix delivers them.

Afterwards delivered rows older than ``SPOOL_RETENTION_DAYS`` are purged and the ``SPOOL_MAX_MB`` cap is enforced
(see :meth:`Delivery.enforce_cap`). Nothing here is imported by the request path.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from ctg_app.settings import Settings, get_settings
from ctg_app.warehouse.connection import WarehouseConfigError, describe_error, warehouse_errors
from ctg_app.warehouse.errors import CONFIGURATION, REJECTED, TRANSIENT, advice, classify_error
from ctg_app.tracking.delivery.databricks_sink import DatabricksSink, TableSchemaError
from ctg_app.tracking.delivery.leases import Delivery
from ctg_app.tracking.delivery.sink import Batch, SendResult, Sink
from ctg_app.tracking.recording.spool import Spool

log = logging.getLogger(__name__)

# Outcomes of a run (the CLI maps them to exit codes).
OK = "ok"
CONFIG = "config"
UNREACHABLE = "unreachable"
PARTIAL = "partial"

#: A batch whose events the warehouse refuses one by one more often than this is not a few bad events but a table
#: that cannot take them: delivery pauses as for a configuration error instead of dead-lettering them all.
MAX_ISOLATED_REJECTIONS = 32


@dataclass
class FlushReport:
    """What one run did. ``outcome`` is ``ok``, ``config``, ``unreachable`` or ``partial``."""

    claimed: int = 0
    delivered: int = 0  # rows acked in the spool
    inserted: int = 0  # rows new to the table (delivered - inserted were already there: re-sends, replays)
    batches: int = 0
    statements: int = 0
    conflicts: int = 0
    released: int = 0
    dead: int = 0
    purged: int = 0
    dropped_cap: int = 0
    parked: int = 0  # pending events moved to the park volume (park.py)
    unparked: int = 0  # parked events delivered from the park volume
    park_error: str | None = None
    mode: str | None = None
    error: str | None = None
    error_kind: str | None = None  # config | auth | unreachable | rejected
    advice: str | None = None  # what an operator should do about ``error`` (from the error's class, not its text)
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        """``ok`` (no failure), ``config`` (settings/credentials/table), ``unreachable`` (nothing delivered because the
        warehouse could not be reached) or ``partial`` (some delivered, then a failure; or refused events dead-lettered)."""
        if self.error_kind in ("config", "auth"):
            return CONFIG
        if self.error_kind == "unreachable":
            return PARTIAL if self.delivered else UNREACHABLE
        if self.dead:
            return PARTIAL
        return OK

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``outcome``."""
        data = asdict(self)
        data["outcome"] = self.outcome
        return data


#: The flush's error kinds (``FlushReport.error_kind``) by warehouse verdict; ``auth`` is a configuration verdict
#: about the credentials (:attr:`~ctg_app.warehouse.errors.Verdict.is_auth`).
ERROR_KINDS = {CONFIGURATION: "config", REJECTED: "rejected", TRANSIENT: "unreachable"}


def classify(exc: BaseException) -> str:
    """``config``, ``auth``, ``rejected`` (refused for good) or ``unreachable`` (try again later): the one warehouse
    verdict (:func:`ctg_app.warehouse.errors.classify_error`) in the flush's words."""
    verdict = classify_error(exc)
    return "auth" if verdict.kind == CONFIGURATION and verdict.is_auth else ERROR_KINDS[verdict.kind]


def new_owner(kind: str = "flush") -> str:
    """A lease owner id unique to this flusher: host, pid, kind and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind}:{uuid.uuid4().hex[:8]}"


class Flusher:
    """Flushes one spool to the central table. Cheap to build; each :meth:`run` opens and closes one connection."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        spool: Spool | None = None,
        owner: str | None = None,
        batch_size: int | None = None,
        lease_seconds: float | None = None,
        sink_factory: Callable[[Settings], Sink] = DatabricksSink,
    ) -> None:
        self.settings = settings or get_settings()
        self.spool = spool or Spool.from_settings(self.settings)
        self.delivery = Delivery(self.spool)
        self.owner = owner or new_owner()
        self.batch_size = max(1, int(batch_size or self.settings.flush_batch_size))
        # A lease must outlive the slowest send (bounded by WAREHOUSE_TIMEOUT_S per call) with a wide margin.
        self.lease_seconds = float(lease_seconds or max(300.0, 20 * self.settings.warehouse_timeout_s))
        self.sink_factory = sink_factory

    # ----- the run -------------------------------------------------------------------------------------------------

    def run(
        self,
        *,
        max_batches: int | None = None,
        ignore_backoff: bool = False,
        progress: Callable[[int, FlushReport], None] | None = None,
        stop: threading.Event | None = None,
        housekeeping: bool = True,
    ) -> FlushReport:
        """Deliver due pending rows until none are left, ``max_batches`` were sent, ``stop`` is set or a failure stops
        the run; then purge and enforce the size cap. ``progress(delivered_now, report)`` is called after each batch."""
        report = FlushReport()
        started = time.monotonic()
        try:
            self.spool.reconcile()  # rows a slow writer added to a quarantined file since its salvage
            if self.due_count(ignore_backoff=ignore_backoff, limit=1):
                self._deliver(report, max_batches, ignore_backoff, progress, stop)
                if report.mode == "full":
                    self.delivery.settle_legacy_watermark()
            if self.settings.park_volume:  # the off-box park tier (park.py): park in an outage, deliver parked
                from ctg_app.tracking.delivery.park import after_flush

                after_flush(self, report, stop)
        finally:
            if housekeeping:
                self._housekeep(report)
            report.seconds = round(time.monotonic() - started, 3)
            try:
                if report.error:
                    self.delivery.record_error(report.error)
                else:
                    self.delivery.record_success(report.delivered)
            except Exception:  # noqa: BLE001 - bookkeeping must not hide the run's outcome
                log.warning("could not record the flush result in the spool", exc_info=True)
        return report

    def _deliver(self, report: FlushReport, max_batches: int | None, ignore_backoff: bool,
                 progress: Callable[[int, FlushReport], None] | None, stop: threading.Event | None) -> None:
        sink = self.sink_factory(self.settings)
        try:
            report.mode = sink.ensure_table()
        except (WarehouseConfigError, TableSchemaError, *warehouse_errors()) as exc:
            kind = classify(exc)
            self._fail(report, exc, "config" if kind == "rejected" else kind)
            sink.close()
            return
        sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flush-send")
        in_flight = Batch()
        prefetched = Batch()
        try:
            prefetched = self._claim(report, ignore_backoff, sink)
            while prefetched:
                in_flight, prefetched = prefetched, Batch()
                future: Future = sender.submit(self._send_isolating, sink, in_flight)
                report.batches += 1
                more = (max_batches is None or report.batches < max_batches) and not (stop and stop.is_set())
                if more:
                    prefetched = self._claim(report, ignore_backoff, sink)  # overlaps the MERGE on the wire
                try:
                    result, refused = future.result()
                except (ValueError, *warehouse_errors()) as exc:
                    kind = classify(exc)
                    message = describe_error(exc, self.settings)
                    # transient: back off; settings/table/credentials: due again at once, so the first run after
                    # the fix delivers (the run itself stops here: delivery pauses until then)
                    retry_at = time.time() if kind in ("config", "auth") else None
                    report.released += self.delivery.release(self.owner, in_flight.seqs, message, retry_at,
                                                             file_id=in_flight.file_id)
                    self._fail(report, exc, kind, message)
                    in_flight = Batch()
                    break
                for event, reason in refused:
                    report.dead += self.delivery.dead(self.owner, event.seqs, reason, file_id=event.file_id)
                    report.error = reason
                    log.error("the warehouse refused one event for good; dead-lettered alone (its %d batch-mates "
                              "were delivered): %s", len(in_flight) - 1, reason)
                acked = self.delivery.ack(self.owner, in_flight.seqs, file_id=in_flight.file_id)
                if acked < len(in_flight):
                    log.warning("%d of %d delivered events had lost their lease (another flusher took over); "
                                "the MERGE keeps them exactly-once", len(in_flight) - acked, len(in_flight))
                in_flight = Batch()
                report.delivered += acked
                report.inserted += result.inserted
                report.statements += result.statements
                report.conflicts += result.conflicts
                if progress is not None:
                    progress(acked, report)
        except BaseException as exc:
            if in_flight:  # outcome unknown: give it back (re-sending is safe)
                self.delivery.release(self.owner, in_flight.seqs, f"flush interrupted: {type(exc).__name__}",
                                      file_id=in_flight.file_id)
            raise
        finally:
            if prefetched:
                self.delivery.unlease(self.owner, prefetched.seqs, file_id=prefetched.file_id)
            sender.shutdown(wait=True)
            sink.close()

    def _send_isolating(self, sink: Sink, batch: Batch) -> tuple[SendResult, list[tuple[Batch, str]]]:
        """Send ``batch``; when the warehouse refuses it for good (:data:`~ctg_app.warehouse.errors.REJECTED`, e.g.
        one event over the 1 MB statement limit), split it in halves until each refused event is alone, so only
        those are dead-lettered. Returns the summed result and the refused one-event batches with the reason.
        Any other failure propagates (the whole batch is released; parts already sent are re-sent safely)."""
        totals = [0, 0, 0]
        refused: list[tuple[Batch, str]] = []

        def send(part: Batch) -> None:
            try:
                result = sink.send(part)
            except (ValueError, *warehouse_errors()) as exc:
                if classify(exc) != "rejected":
                    raise
                if len(part) > 1:
                    middle = len(part) // 2
                    send(part.part(0, middle))
                    send(part.part(middle, len(part)))
                    return
                refused.append((part, describe_error(exc, self.settings)))
                if len(refused) > MAX_ISOLATED_REJECTIONS:
                    raise TableSchemaError(
                        f"the warehouse refused more than {MAX_ISOLATED_REJECTIONS} events of one batch one by one "
                        f"(last: {refused[-1][1]}): the table cannot take them") from exc
                return
            totals[0] += result.inserted
            totals[1] += result.statements
            totals[2] += result.conflicts

        send(batch)
        return SendResult(*totals), refused

    def _claim(self, report: FlushReport, ignore_backoff: bool, sink: Sink) -> Batch:
        rows = self.delivery.claim(self.owner, self.batch_size, self.lease_seconds,
                                   ignore_backoff=ignore_backoff, encoding_sql=sink.encoding_sql)
        report.claimed += len(rows)
        if rows and report.mode == "legacy":  # ranks keep distinct events sharing the natural key apart
            rows.ordinals = self.spool.natural_key_ordinals(rows.seqs)
            self.delivery.note_legacy_send(rows.seqs)
        elif rows and report.mode == "full":
            mark = self.delivery.legacy_watermark()
            rows.legacy_resend = mark is not None and rows.seqs[0] <= mark
        return rows

    def _fail(self, report: FlushReport, exc: BaseException, kind: str, message: str | None = None) -> None:
        report.error = message or describe_error(exc, self.settings)
        report.error_kind = kind
        report.advice = advice(classify_error(exc))
        log.warning("flush stopped: %s", report.error)

    def _housekeep(self, report: FlushReport) -> None:
        try:
            report.purged = self.delivery.purge(timedelta(days=self.settings.spool_retention_days))
            cap = self.delivery.enforce_cap(int(self.settings.spool_max_mb) * 1024 * 1024)
            report.purged += cap.purged_delivered
            report.dropped_cap = cap.dropped_undelivered
        except Exception:  # noqa: BLE001 - housekeeping failing must not turn a delivery into a failure
            log.warning("spool housekeeping (retention / size cap) failed", exc_info=True)

    # ----- other commands ------------------------------------------------------------------------------------------

    def due_count(self, *, ignore_backoff: bool = False, limit: int | None = None) -> int:
        """Pending rows that a run would claim now (stops counting at ``limit``)."""
        return self.delivery.due_count(ignore_backoff=ignore_backoff, limit=limit)

    def plan(self, *, ignore_backoff: bool = False) -> dict[str, Any]:
        """A dry run: what a run would send, and the table's state (reads only: connects, ``DESCRIBE``s, writes
        nothing). Raises the warehouse's errors."""
        due = self.due_count(ignore_backoff=ignore_backoff)
        sink = self.sink_factory(self.settings)
        try:
            sink.ensure_table(create=False)
            described = sink.describe()
        finally:
            sink.close()
        return {
            "table": described["table"],
            "table_mode": described["mode"],
            "due": due,
            "batch_size": self.batch_size,
            "batches": -(-due // self.batch_size),
        }

    def migrate(self) -> list[str]:
        """Create the table, or add its missing nullable columns (``ALTER TABLE ... ADD COLUMNS``). Returns them."""
        sink = self.sink_factory(self.settings)
        try:
            return sink.migrate()
        finally:
            sink.close()
