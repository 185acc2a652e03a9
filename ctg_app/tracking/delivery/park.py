"""The park tier: pending events kept off-box, on a Unity Catalog volume, while the warehouse cannot take them.

Databricks Apps' disk does not survive a restart or redeploy. With ``TRACKING_PARK_VOLUME`` set
(``/Volumes/<catalog>/<schema>/<volume>/<dir>/``), pending events are written as gzip-compressed JSON-lines segment
files to that volume through the Databricks Files API (``databricks-sdk``'s ``WorkspaceClient().files``; a workspace
REST service, independent of the SQL warehouse):

- when the warehouse has been unreachable for ``TRACKING_PARK_AFTER_S`` (see :func:`after_flush`), and at shutdown
  (``ctg_app.tracking.delivery.shutdown``);
- a segment is uploaded first (``overwrite=false``, a unique name), and only then are its rows marked ``parked`` in
  the spool. A crash in between leaves the rows pending: they are sent or parked again later, and the exactly-once
  ``MERGE`` on ``event_id`` inserts each event once however many copies exist.

Any later flusher (the app after a restart, another replica, ``flush-spool``) lists the volume, sends each segment
with the same ``MERGE`` and deletes the segment only after the warehouse confirmed it (:meth:`Parker.deliver_parked`).
A crash between the confirmation and the delete re-sends the segment next time, inserting nothing twice.

Each line of a segment is one event in the ``MERGE``'s wire form (``databricks_sink.encode_event``).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from ctg_app.settings import Settings
from ctg_app.tracking.delivery.databricks_sink import EVENT_JSON_SQL, WIRE_NAMES, DatabricksSink
from ctg_app.tracking.delivery.sink import Batch
from ctg_app.tracking.recording.event import EVENT_COLUMNS, format_timestamp, utc_now
from ctg_app.redact import Redactor
from ctg_app.tracking.recording.spool import STATE_DELIVERED, STATE_PARKED, STATE_PENDING, TABLE, Spool

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl.gz"
SEGMENT_ROWS = 20_000
META_PARK_FAILED = "park.failed_events"  # pending events the last park attempt could not move (0 after a success)
META_UNREACHABLE_SINCE = "park.unreachable_since"  # time.time() of the first failed run of the current outage
META_LAST_PARK_ERROR = "park.last_error"
META_LAST_PARK_ERROR_AT = "park.last_error_at"

_FROM_WIRE = {short: name for name, short in WIRE_NAMES.items()}


class ParkConfigError(ValueError):
    """``TRACKING_PARK_VOLUME`` is not a volume path, names a volume that does not exist, or there are no workspace
    credentials."""


@dataclass
class ParkReport:
    """What one park or unpark pass did."""

    parked: int = 0  # events written to the volume this pass
    segments_written: int = 0
    delivered: int = 0  # parked events the warehouse confirmed this pass (segments then deleted)
    inserted: int = 0  # of those, new to the table
    segments_delivered: int = 0
    segments_bad: int = 0  # unreadable segments, left on the volume
    failed: int = 0  # events that could not be parked (still pending in the spool)
    error: str | None = None
    error_kind: str | None = None  # with ``error``: ``config`` (fix a setting or grant) or ``unreachable`` (retry)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def volume_dir(settings: Settings) -> str | None:
    """``TRACKING_PARK_VOLUME`` without its trailing slash, or None when unset. Raises :class:`ParkConfigError`
    unless it is ``/Volumes/<catalog>/<schema>/<volume>[/<dir>...]``."""
    raw = (settings.park_volume or "").strip()
    if not raw:
        return None
    parts = raw.strip("/").split("/")
    if raw[0] != "/" or len(parts) < 4 or parts[0] != "Volumes" or not all(parts) or ".." in parts:
        raise ParkConfigError(
            f"TRACKING_PARK_VOLUME must look like /Volumes/<catalog>/<schema>/<volume>/<dir>/, got {raw[:120]!r}")
    return "/" + "/".join(parts)


def files_client(settings: Settings, timeout_s: float) -> Any:
    """The SDK's Files API client (``WorkspaceClient().files``) for the configured workspace, with bounded waits.

    The workspace is ``DATABRICKS_HOST`` / ``DATABRICKS_SERVER_HOSTNAME`` (or the scheme://host:port of
    ``DATABRICKS_CONNECTION_URI``, the local fake); auth the access token, or the service principal (OAuth M2M, as
    Databricks Apps injects it). Segments are small, so each call is one plain Files API request: the SDK's newer
    transfer client (presigned URLs, multipart) is switched off where the installed SDK has it.
    """
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    from ctg_app.warehouse.connection import oauth_base_url

    located = bool(settings.databricks_connection_uri or settings.databricks_server_hostname)
    if not (located or settings.databricks_config_profile or settings.databricks_runtime_version):
        raise ParkConfigError("the park volume needs the workspace: set DATABRICKS_HOST (or DATABRICKS_SERVER_HOSTNAME)")
    seconds = max(1, int(round(timeout_s)))
    kwargs: dict[str, Any] = {"host": oauth_base_url(settings) if located else None, "retry_timeout_seconds": seconds,
                              "http_timeout_seconds": seconds}
    if settings.databricks_access_token:
        kwargs.update(token=settings.databricks_access_token, auth_type="pat")
    elif settings.databricks_client_id and settings.databricks_client_secret:
        kwargs.update(client_id=settings.databricks_client_id, client_secret=settings.databricks_client_secret,
                      auth_type="oauth-m2m")
    elif settings.databricks_config_profile or settings.databricks_runtime_version:  # unified auth (profile / job)
        kwargs["profile"] = settings.databricks_config_profile or None
        if not (settings.databricks_connection_uri or settings.databricks_server_hostname):
            del kwargs["host"]
    else:
        raise ParkConfigError("the park volume needs credentials: DATABRICKS_ACCESS_TOKEN, or DATABRICKS_CLIENT_ID "
                              "and DATABRICKS_CLIENT_SECRET")
    if hasattr(Config, "disable_experimental_files_api_client"):
        kwargs["disable_experimental_files_api_client"] = True
    return WorkspaceClient(config=Config(**kwargs)).files


def encode_segment(texts: list[str]) -> bytes:
    """A segment file's bytes: the events' wire texts, one per line, gzip-compressed."""
    return gzip.compress(("\n".join(texts) + "\n").encode("utf-8"), compresslevel=6)


def decode_segment(data: bytes) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The events of a segment as tuples in ``EVENT_COLUMNS`` order, and their wire texts. Raises ``ValueError``
    (or ``OSError`` from gzip) on a damaged file."""
    texts = [line for line in gzip.decompress(data).decode("utf-8").splitlines() if line.strip()]
    events = []
    for text in texts:
        obj = json.loads(text)
        row = {_FROM_WIRE[key]: value for key, value in obj.items() if key in _FROM_WIRE}
        if not row.get("event_id") or not row.get("timestamp"):
            raise ValueError("a segment line lacks id or ts")
        row["timestamp"] = str(row["timestamp"]).removesuffix("Z").replace("T", " ")
        events.append(tuple(row.get(name) for name in EVENT_COLUMNS))
    return events, texts


def segment_name() -> str:
    """A new segment's file name: sortable by time, unique across hosts and processes."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"{stamp}-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SEGMENT_SUFFIX}"


@dataclass
class Segment:
    """A segment file on the volume."""

    name: str
    path: str
    size: int | None = None
    modified: float | None = None  # Unix seconds

    @property
    def age_s(self) -> float | None:
        """Seconds since it was written (from its last-modified time)."""
        return None if self.modified is None else round(max(0.0, time.time() - self.modified), 1)


@dataclass
class Parker:
    """Parks a spool's pending events on the volume and delivers parked segments (one per flusher)."""

    settings: Settings
    spool: Spool
    timeout_s: float = 10.0
    client: Any = None
    segment_rows: int = SEGMENT_ROWS
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:park:{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        directory = volume_dir(self.settings)
        if directory is None:
            raise ParkConfigError("TRACKING_PARK_VOLUME is not set")
        self.directory = directory
        self._redact = Redactor(self.settings.secret_values(), max_length=300)

    @property
    def files(self) -> Any:
        """The Files API client (built on first use)."""
        if self.client is None:
            self.client = files_client(self.settings, self.timeout_s)
        return self.client

    # ----- parking -------------------------------------------------------------------------------------------------

    def park_pending(self, *, force: bool = False, deadline: float | None = None) -> ParkReport:
        """Move every pending event (backoff ignored) to segment files on the volume, then mark them ``parked``.

        ``force`` also takes rows leased by a flusher still in flight (at shutdown: its outcome is unknown, and a
        copy in the warehouse and one in a segment still make one row). Stops at ``deadline`` (``time.monotonic()``).
        On a Files API failure the claimed rows go back to pending and are counted in ``park_failed``.
        """
        report = ParkReport()
        while deadline is None or time.monotonic() < deadline:
            seqs, texts = self._claim(force)
            if not seqs:
                break
            name = segment_name()
            try:
                self.files.upload(f"{self.directory}/{name}", io.BytesIO(encode_segment(texts)), overwrite=False)
            except Exception as exc:  # noqa: BLE001 - SDK errors, requests errors, bad config: the rows stay pending
                self._unclaim(seqs)
                pending = self.spool.counts()[STATE_PENDING]
                report.failed += pending
                report.error = self._describe(exc)
                self.spool.set_meta(META_PARK_FAILED, str(pending))
                self._record_error(report.error)
                log.warning("could not park %d pending events on %s: %s (they stay in the spool)",
                            pending, self.directory, report.error)
                break
            marked = self._mark_parked(seqs, name)
            report.parked += marked
            report.segments_written += 1
            log.info("parked %d events in %s/%s", marked, self.directory, name)
        if report.segments_written and not report.error:
            self.spool.set_meta(META_PARK_FAILED, "0")
        return report

    def _claim(self, force: bool) -> tuple[list[int], list[str]]:
        now = time.time()
        lease = "" if force else " AND (lease_expires_at IS NULL OR lease_expires_at <= :now)"
        with self.spool.transaction("IMMEDIATE") as conn:
            rows = conn.execute(
                f"UPDATE {TABLE} SET lease_owner = :owner, lease_expires_at = :until "
                f"WHERE seq IN (SELECT seq FROM {TABLE} WHERE state = '{STATE_PENDING}'{lease} "
                f"ORDER BY seq LIMIT :limit) RETURNING seq, {EVENT_JSON_SQL}",
                {"owner": self.owner, "until": now + 600, "now": now, "limit": self.segment_rows},
            ).fetchall()
        rows.sort()
        return [r[0] for r in rows], [r[1] for r in rows]

    def _unclaim(self, seqs: list[int]) -> None:
        with self.spool.transaction("IMMEDIATE") as conn:
            conn.execute(
                f"UPDATE {TABLE} SET lease_owner = NULL, lease_expires_at = NULL "
                f"WHERE seq IN (SELECT value FROM json_each(:seqs)) AND lease_owner = :owner AND state = '{STATE_PENDING}'",
                {"seqs": json.dumps(seqs), "owner": self.owner})

    def _mark_parked(self, seqs: list[int], name: str) -> int:
        with self.spool.transaction("IMMEDIATE") as conn:
            return conn.execute(
                f"UPDATE {TABLE} SET state = '{STATE_PARKED}', parked_segment = :name, lease_owner = NULL, "
                f"lease_expires_at = NULL WHERE seq IN (SELECT value FROM json_each(:seqs)) "
                f"AND lease_owner = :owner AND state = '{STATE_PENDING}'",
                {"seqs": json.dumps(seqs), "owner": self.owner, "name": name}).rowcount

    # ----- delivering parked segments ------------------------------------------------------------------------------

    def segments(self) -> list[Segment]:
        """The segment files on the volume, oldest first (none when the directory does not exist yet)."""
        from databricks.sdk.errors import NotFound

        found = []
        try:
            for entry in self.files.list_directory_contents(self.directory):
                name = entry.name or (entry.path or "").rsplit("/", 1)[-1]
                if entry.is_directory or not name.endswith(SEGMENT_SUFFIX):
                    continue
                modified = entry.last_modified / 1000 if entry.last_modified else None
                found.append(Segment(name, entry.path or f"{self.directory}/{name}", entry.file_size, modified))
        except NotFound:
            self._check_volume_exists()
            return []
        return sorted(found, key=lambda s: s.name)

    def _check_volume_exists(self) -> None:
        """The park directory is missing: fine when the volume exists (nothing parked yet), a configuration error
        (:class:`ParkConfigError`) when the volume itself does not."""
        from databricks.sdk.errors import NotFound

        volume = "/" + "/".join(self.directory.strip("/").split("/")[:4])
        if volume == self.directory:
            return
        try:
            self.files.get_directory_metadata(volume)
        except NotFound:
            raise ParkConfigError(f"TRACKING_PARK_VOLUME: the volume {volume} does not exist (create it, or fix the "
                                  "path)") from None

    def deliver_parked(self, sink_factory: Callable[[Settings], DatabricksSink] = DatabricksSink,
                       *, deadline: float | None = None) -> ParkReport:
        """Send every parked segment on the volume to the warehouse (exactly-once ``MERGE``), deleting each only
        after the warehouse confirmed it; local rows of delivered segments become ``delivered``. Stops at the first
        warehouse or Files API failure (``report.error``), or at ``deadline``."""
        from databricks.sdk.errors import NotFound

        report = ParkReport()
        try:
            segments = self.segments()
        except Exception as exc:  # noqa: BLE001
            report.error, report.error_kind = self._describe(exc), self._kind(exc)
            return report
        self._reconcile({s.name for s in segments})
        if not segments:
            return report
        sink = sink_factory(self.settings)
        try:
            sink.open()
            for segment in segments:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    data = self.files.download(segment.path).contents.read()
                except NotFound:  # another flusher delivered it meanwhile
                    continue
                try:
                    events, texts = decode_segment(data)
                except (ValueError, OSError, EOFError) as exc:
                    report.segments_bad += 1
                    log.error("parked segment %s is unreadable (%s); left on the volume", segment.path, exc)
                    continue
                batch = Batch(seqs=list(range(len(events))), attempts=[0] * len(events), events=events, texts=texts)
                result = sink.send(batch) if events else None
                try:
                    self.files.delete(segment.path)
                except NotFound:
                    pass
                report.segments_delivered += 1
                report.delivered += len(events)
                report.inserted += result.inserted if result else 0
                self._mark_delivered(segment.name)
                log.info("delivered parked segment %s: %d events (%d new)", segment.name, len(events),
                         result.inserted if result else 0)
        except Exception as exc:  # noqa: BLE001 - warehouse or Files API down: the segments wait on the volume
            report.error, report.error_kind = self._describe(exc), self._kind(exc)
            log.warning("delivering parked segments stopped: %s", report.error)
        finally:
            sink.close()
        return report

    def _mark_delivered(self, name: str) -> None:
        with self.spool.transaction("IMMEDIATE") as conn:
            conn.execute(
                f"UPDATE {TABLE} SET state = '{STATE_DELIVERED}', delivered_at = :at "
                f"WHERE state = '{STATE_PARKED}' AND parked_segment = :name",
                {"name": name, "at": format_timestamp(utc_now())})

    def _reconcile(self, on_volume: set[str]) -> None:
        """Local rows parked in segments no longer on the volume were delivered (by another flusher): say so."""
        conn = self.spool.connection()
        names = [r[0] for r in conn.execute(
            f"SELECT DISTINCT parked_segment FROM {TABLE} WHERE state = '{STATE_PARKED}'")]
        for name in names:
            if name not in on_volume:
                self._mark_delivered(name)

    # ----- status --------------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``park_volume``, ``parked_local`` (rows of this spool in state parked), ``parked_segments`` (on the volume:
        ``name``, ``bytes``, ``age_s``), ``oldest_parked_age_s``, ``park_failed`` (pending events the last park attempt
        could not move: they are still in the spool), ``last_park_error`` and
        ``volume_error`` (when the volume could not be listed)."""
        counts = self.spool.counts()
        meta = self.spool.meta()
        result: dict[str, Any] = {
            "park_volume": self.directory,
            "parked_local": counts.get(STATE_PARKED, 0),
            "parked_segments": [],
            "oldest_parked_age_s": None,
            "park_failed": int(meta.get(META_PARK_FAILED) or 0),
            "last_park_error": meta.get(META_LAST_PARK_ERROR),
            "last_park_error_at": meta.get(META_LAST_PARK_ERROR_AT),
            "volume_error": None,
        }
        try:
            segments = self.segments()
        except Exception as exc:  # noqa: BLE001
            result["volume_error"] = self._describe(exc)
            return result
        result["parked_segments"] = [{"name": s.name, "bytes": s.size, "age_s": s.age_s} for s in segments]
        ages = [s.age_s for s in segments if s.age_s is not None]
        result["oldest_parked_age_s"] = max(ages) if ages else None
        return result

    # ----- helpers -------------------------------------------------------------------------------------------------

    def _describe(self, exc: BaseException) -> str:
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, ParkConfigError):
            text = str(exc)
        elif status in (401, 403) or type(exc).__name__ in ("Unauthenticated", "PermissionDenied"):
            text = f"park volume {self.directory}: access denied ({type(exc).__name__}): grant the app WRITE VOLUME"
        else:
            text = f"park volume {self.directory}: {type(exc).__name__}: {first}"
        return self._redact(text)

    @staticmethod
    def _kind(exc: BaseException) -> str:
        """``config`` (a setting, grant or missing volume/table: retrying will not help) or ``unreachable``."""
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, ParkConfigError) or status in (401, 403, 404) or type(exc).__name__ in (
                "Unauthenticated", "PermissionDenied", "NotFound"):
            return "config"
        if type(exc).__module__.startswith(("databricks.sql", "ctg_app.warehouse")):
            from ctg_app.tracking.delivery.flush import classify

            return "unreachable" if classify(exc) == "unreachable" else "config"
        return "unreachable"

    def _record_error(self, message: str) -> None:
        self.spool.set_meta(META_LAST_PARK_ERROR, message[:500])
        self.spool.set_meta(META_LAST_PARK_ERROR_AT, format_timestamp(utc_now()))


def after_flush(flusher: Any, report: Any, stop: Any = None) -> None:
    """The flush's park step (``Flusher.run`` calls it when ``TRACKING_PARK_VOLUME`` is set; never raises).

    Tracks how long the warehouse has been unreachable (spool meta, so it spans runs and processes); once that is
    ``TRACKING_PARK_AFTER_S`` or more, parks every pending event. When the run met no failure, delivers the parked
    segments found on the volume. Adds ``parked`` / ``unparked`` / ``park_error`` to the report.
    """
    settings = flusher.settings
    spool = flusher.spool
    try:
        parker = Parker(settings, spool, timeout_s=settings.warehouse_timeout_s, owner=f"{flusher.owner}:park")
        now = time.time()
        since = float(spool.meta().get(META_UNREACHABLE_SINCE) or 0) or None
        if report.error_kind == "unreachable":
            if since is None:
                since = now
                spool.set_meta(META_UNREACHABLE_SINCE, repr(now))
        elif report.error is None and report.mode is not None:  # the warehouse answered: the outage is over
            if since is not None:
                spool.set_meta(META_UNREACHABLE_SINCE, None)
            since = None
        # (a run that sent nothing, e.g. every row waiting out its backoff, says nothing about the outage)
        if stop is not None and stop.is_set():
            return
        pending = spool.counts()[STATE_PENDING]
        if since is not None and pending:
            if now - since >= settings.park_after_s:
                log.warning("warehouse unreachable for %.0f s (TRACKING_PARK_AFTER_S=%g): parking pending events on %s",
                            now - since, settings.park_after_s, parker.directory)
                parked = parker.park_pending()
                report.parked += parked.parked
                report.park_error = parked.error
            return
        if report.error is None:  # the warehouse took what was due (or nothing was): deliver what is parked
            unparked = parker.deliver_parked(flusher.sink_factory)
            report.unparked += unparked.delivered
            report.inserted += unparked.inserted
            report.park_error = unparked.error
            if unparked.segments_delivered and since is not None:  # the warehouse took a segment: outage over
                spool.set_meta(META_UNREACHABLE_SINCE, None)
    except Exception as exc:  # noqa: BLE001 - the park tier must never break the flush
        log.warning("park step failed: %s", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        report.park_error = type(exc).__name__


def parked_status(settings: Settings, spool: Spool) -> dict[str, Any] | None:
    """The park tier's part of ``flush-spool --status`` (lists the volume), or None when no volume is configured."""
    try:
        if volume_dir(settings) is None:
            return None
        return Parker(settings, spool, timeout_s=min(10.0, settings.warehouse_timeout_s)).status()
    except ParkConfigError as exc:
        return {"park_volume": settings.park_volume, "volume_error": str(exc), "parked_segments": [],
                "parked_local": spool.counts().get(STATE_PARKED, 0)}


__all__ = ["Parker", "ParkReport", "ParkConfigError", "Segment", "after_flush", "parked_status", "volume_dir",
           "files_client", "encode_segment", "decode_segment"]
