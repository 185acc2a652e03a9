"""``flush-spool``: ship the usage spool to the central Databricks table (exactly once), or report on it.

Run it from cron or a Databricks job; it is safe to run while the app records events, while the app's background
flusher runs, and as several copies at once. See ``docs/flush-spool.md``.

Without a local spool (a Databricks job while the app is stopped) and with ``TRACKING_PARK_VOLUME`` set, it delivers
the parked segments on the volume. ``--profile NAME`` authenticates through a ``~/.databrickscfg`` profile
(Databricks unified auth); explicit ``DATABRICKS_*`` credentials win over it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from ctg_app.exit_codes import (
    EXIT_CODES_HELP as _TABLE,
    EXIT_CONFIG,
    EXIT_FAILED as EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_UNAVAILABLE as EXIT_UNREACHABLE,
    EXIT_USAGE,
)

EXIT_CODES_HELP = _TABLE + """
environment: DATABRICKS_SERVER_HOSTNAME, DATABRICKS_HTTP_PATH, DATABRICKS_ACCESS_TOKEN (or DATABRICKS_CONNECTION_URI),
TRACKING_TABLE, TRACKING_SPOOL_PATH, WAREHOUSE_TIMEOUT_S, FLUSH_BATCH_SIZE, SPOOL_RETENTION_DAYS, SPOOL_MAX_MB,
TRACKING_PARK_VOLUME, TRACKING_PARK_AFTER_S; DATABRICKS_CONFIG_PROFILE / DATABRICKS_CONFIG_FILE (or --profile).
"""

_OUTCOME_EXIT = {"ok": EXIT_OK, "config": EXIT_CONFIG, "unreachable": EXIT_UNREACHABLE, "partial": EXIT_PARTIAL}

log = logging.getLogger("ctg_app.flush_spool")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="flush-spool",
        description="Ship the local usage-tracking spool to the central Databricks table, exactly once.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true",
                      help="show the spool's delivery status and exit (no warehouse; lists the park volume if set)")
    what.add_argument("--dry-run", action="store_true",
                      help="connect and inspect the table, show what would be sent; write nothing")
    what.add_argument("--migrate", action="store_true",
                      help="create the table, or add the missing nullable columns to a legacy 4-column table")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    parser.add_argument("--retry-dead", action="store_true", help="put dead-lettered events back to pending, then flush")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="events per batch (default FLUSH_BATCH_SIZE); each batch is one MERGE per <=1 MB")
    parser.add_argument("--max-batches", type=_positive_int, default=None, help="stop after this many batches")
    parser.add_argument("--ignore-backoff", action="store_true",
                        help="also send events still waiting out their retry backoff")
    parser.add_argument("--lease-seconds", type=float, default=None,
                        help="how long a claimed batch stays reserved (default max(300, 20 x WAREHOUSE_TIMEOUT_S))")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (the connector's too)")
    add_common_options(parser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--profile NAME`` and ``--version``, which every command line of the app has."""
    from ctg_app.warehouse.connection import app_version

    parser.add_argument("--profile", default=argparse.SUPPRESS, metavar="NAME",
                        help="Databricks unified auth: the ~/.databrickscfg profile (or DATABRICKS_CONFIG_FILE) to "
                             "use when no DATABRICKS_* credentials are set")
    parser.add_argument("--version", action="version", version=f"%(prog)s {app_version()}")


def apply_profile(args: argparse.Namespace) -> None:
    """Make ``--profile`` the process's ``DATABRICKS_CONFIG_PROFILE`` (read by the settings and the SDK)."""
    import os

    profile = getattr(args, "profile", None)
    if profile:
        os.environ["DATABRICKS_CONFIG_PROFILE"] = profile


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


class _RedactingFilter(logging.Filter):
    """Removes configured secrets and token-shaped text from every log record this command emits."""

    def __init__(self, redact: Any) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = self.redact(message), None
        return True


@contextmanager
def _logging_to(stream: TextIO, verbose: bool, redact: Any) -> Iterator[None]:
    """Send all log records, redacted, to ``stream`` while the command runs; restore the previous logging after
    (``main()`` is also called in-process, by tests and ``ctg-app selftest``)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_RedactingFilter(redact))
    root = logging.getLogger()
    noisy = [logging.getLogger("databricks"), logging.getLogger("urllib3")]
    saved = (list(root.handlers), root.level, [logger.level for logger in noisy])
    for old in saved[0]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:  # the connector logs each failed HTTP attempt at ERROR; our own message says it better
        for logger in noisy:
            logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for old in saved[0]:
            root.addHandler(old)
        root.setLevel(saved[1])
        for logger, level in zip(noisy, saved[2]):
            logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flush-spool`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    apply_profile(args)
    from ctg_app.console import run_redacted

    # stdout (text and --json), stderr and any traceback pass through the redactor: a secret pasted into a setting
    # (TRACKING_TABLE, say) must not echo in an error message.
    return run_redacted(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from ctg_app.settings import SettingsError, reload_settings
    from ctg_app.redact import Redactor

    out = sys.stdout
    try:
        settings = reload_settings()
    except SettingsError as exc:
        with _logging_to(sys.stderr, args.verbose, Redactor(max_length=2000, escape=False)):
            return _config_error(args, str(exc), out)
    redact = Redactor(settings.secret_values(), max_length=2000, escape=False)
    with _logging_to(sys.stderr, args.verbose, redact):
        try:
            return _run(args, settings, out)
        except KeyboardInterrupt:
            log.warning("interrupted; claimed events were released and will be sent next time")
            return 130
        except Exception as exc:  # noqa: BLE001 - last resort: a short, redacted message and a distinct code
            log.error("unexpected error: %s: %s", type(exc).__name__, redact(exc), exc_info=args.verbose)
            return EXIT_ERROR


def _run(args: argparse.Namespace, settings: Any, out: TextIO) -> int:
    from ctg_app.warehouse.connection import (
        WarehouseConfigError,
        describe_error,
        validate_table_name,
        warehouse_errors,
    )
    from ctg_app.tracking.delivery.flush import CONFIG, Flusher, classify

    if not args.migrate and not settings.spool_path.exists() and settings.park_volume and not args.status:
        # a Databricks job while the app is stopped: no local spool, but the park volume may hold segments
        return _drain_parked(args, settings, out)
    if not args.migrate and not settings.spool_path.exists():  # --migrate only touches the table
        # Opening it would create an empty spool and report "nothing to do": a wrong path would go unnoticed.
        return _config_error(args, f"the spool {settings.spool_path} does not exist: check TRACKING_SPOOL_PATH (it "
                             "must name the file the app records into); no spool was created", out)

    if args.status:
        from ctg_app.tracking.delivery.leases import Delivery
        from ctg_app.tracking.recording.spool import Spool

        spool = Spool.from_settings(settings)
        status = Delivery(spool).status()
        if settings.park_volume:  # the park tier's segments on the volume and their age (park.py)
            from ctg_app.tracking.delivery.park import parked_status

            status["park"] = parked_status(settings, spool)
        _print_status(status, args.json, out)
        return EXIT_OK

    try:
        validate_table_name(settings.tracking_table)
        if not settings.warehouse_configured:
            raise WarehouseConfigError(
                "the warehouse is not configured: set DATABRICKS_SERVER_HOSTNAME, DATABRICKS_HTTP_PATH and "
                "DATABRICKS_ACCESS_TOKEN (or DATABRICKS_CONNECTION_URI)")
    except WarehouseConfigError as exc:
        return _config_error(args, str(exc), out)

    flusher = Flusher(settings, batch_size=args.batch_size, lease_seconds=args.lease_seconds)

    if args.migrate or args.dry_run:
        try:
            if args.migrate:
                added = flusher.migrate()
                result: dict[str, Any] = {"table": settings.tracking_table, "columns_added": added}
                text = f"{settings.tracking_table}: " + (f"added {', '.join(added)}" if added else "already up to date")
            else:
                result = flusher.plan(ignore_backoff=args.ignore_backoff)
                text = (f"dry run: {result['due']} events due, {result['batches']} batch(es) of up to "
                        f"{result['batch_size']}; table {result['table']} is {result['table_mode']}")
        except (WarehouseConfigError, *warehouse_errors()) as exc:
            message = describe_error(exc, settings)
            kind = classify(exc)
            code = EXIT_CONFIG if kind in ("config", "auth", "rejected") else EXIT_UNREACHABLE
            _emit(args.json, {"outcome": CONFIG if code == EXIT_CONFIG else "unreachable", "error": message},
                  f"flush-spool: {message}", out, error=True)
            return code
        _emit(args.json, result, text, out)
        return EXIT_OK

    if args.retry_dead:
        replayed = flusher.delivery.retry_dead()
        log.info("%d dead-lettered events put back to pending", replayed)

    progress = _Progress(flusher, enabled_bar=not args.json and sys.stderr.isatty(),
                         ignore_backoff=args.ignore_backoff)
    try:
        report = flusher.run(max_batches=args.max_batches, ignore_backoff=args.ignore_backoff, progress=progress)
    finally:
        progress.close()
    status = flusher.delivery.status()
    summary = (f"delivered {report.delivered} events ({report.inserted} new to the table) in {report.batches} "
               f"batch(es), {report.statements} statement(s), {report.seconds:.1f} s; pending {status['pending']}, "
               f"dead {status['dead']}, dropped {status['dropped']}")
    if report.parked or report.unparked or report.park_error:
        summary += (f"; park volume: {report.parked} parked, {report.unparked} delivered from parked segments"
                    + (f" ({report.park_error})" if report.park_error else ""))
    if report.error:
        summary += f"; error: {report.error}"
    _emit(args.json, {**report.as_dict(), "status": status}, summary, out, error=report.outcome != "ok")
    return _OUTCOME_EXIT[report.outcome]


def _drain_parked(args: argparse.Namespace, settings: Any, out: TextIO) -> int:
    """No local spool: deliver the parked segments on ``TRACKING_PARK_VOLUME`` (exactly once, as the app would),
    keeping the parker's bookkeeping in a throwaway spool. Exit 0 when the volume was drained (or empty)."""
    import tempfile
    from pathlib import Path

    from ctg_app.tracking.delivery.park import ParkConfigError, Parker
    from ctg_app.tracking.recording.spool import Spool
    from ctg_app.warehouse.connection import WarehouseConfigError, validate_table_name

    if args.dry_run or args.retry_dead:
        return _config_error(args, f"the spool {settings.spool_path} does not exist: --dry-run and --retry-dead need "
                             "it (without it flush-spool only delivers the parked segments on the volume)", out)
    try:
        validate_table_name(settings.tracking_table)
    except WarehouseConfigError as exc:
        return _config_error(args, str(exc), out)
    with tempfile.TemporaryDirectory(prefix="ctg-park-drain-") as scratch:
        spool = Spool.from_settings(settings.replace(spool_path=Path(scratch) / "drain.sqlite3"))
        try:
            parker = Parker(settings, spool, timeout_s=settings.warehouse_timeout_s)
            report = parker.deliver_parked()
        except ParkConfigError as exc:
            return _config_error(args, str(exc), out)
        finally:
            spool.close()
    result = {"outcome": "ok" if report.error is None else report.error_kind, "local_spool": None,
              **report.as_dict()}
    text = (f"no local spool ({settings.spool_path}); park volume {parker.directory}: delivered "
            f"{report.delivered} events ({report.inserted} new) from {report.segments_delivered} parked segment(s)"
            + (f"; {report.segments_bad} unreadable segment(s) left" if report.segments_bad else "")
            + (f"; error: {report.error}" if report.error else ""))
    if report.error is None:
        _emit(args.json, result, text, out)
        return EXIT_OK
    code = {"config": EXIT_CONFIG, "unreachable": EXIT_UNREACHABLE}.get(report.error_kind, EXIT_PARTIAL)
    if code == EXIT_UNREACHABLE and report.segments_delivered:
        code = EXIT_PARTIAL
    _emit(args.json, result, f"flush-spool: {text}", out, error=True)
    return code


class _Progress:
    """A tqdm bar on a terminal; otherwise one plain log line per batch."""

    def __init__(self, flusher: Any, *, enabled_bar: bool, ignore_backoff: bool) -> None:
        self.bar = None
        if enabled_bar:
            from tqdm import tqdm

            total = flusher.due_count(ignore_backoff=ignore_backoff)
            self.bar = tqdm(total=total, unit="ev", desc="flush-spool", file=sys.stderr)

    def __call__(self, delivered: int, report: Any) -> None:
        if self.bar is not None:
            self.bar.update(delivered)
        else:
            log.info("batch %d: %d events delivered (%d so far, %d new)", report.batches, delivered,
                     report.delivered, report.inserted)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _config_error(args: argparse.Namespace, message: str, out: TextIO) -> int:
    _emit(args.json, {"outcome": "config", "error": message}, f"flush-spool: configuration error: {message}", out,
          error=True)
    return EXIT_CONFIG


def _emit(as_json: bool, data: dict[str, Any], text: str, out: TextIO, *, error: bool = False) -> None:
    if as_json:
        out.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        (sys.stderr if error else out).write(text + "\n")


def _print_status(status: dict[str, Any], as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(status, indent=2, default=str) + "\n")
        return
    age = status["oldest_pending_age_s"]
    lines = [
        f"spool:            {status['spool_path']} ({status['spool_bytes'] / 1e6:.1f} MB)",
        f"pending:          {status['pending']} (due now {status['due_now']}, in flight {status['leased']})",
        f"oldest pending:   {status['oldest_pending_at'] or '-'}" + (f" ({_age(age)} ago)" if age is not None else ""),
        f"delivered:        {status['delivered']} (kept for retention)",
        f"dead:             {status['dead']}",
        f"dropped:          {status['dropped']} (spool unwritable {status['dropped_unwritable']}, "
        f"size cap {status['dropped_cap']}, unreadable in a corrupt spool {status['dropped_corrupt']})",
        f"last success:     {status['last_success_at'] or '-'}"
        + (f" ({status['last_delivered']} delivered)" if status["last_delivered"] is not None else ""),
        f"last error:       {status['last_error'] or '-'}"
        + (f" (at {status['last_error_at']})" if status["last_error_at"] else ""),
    ]
    for reason in status["dead_reasons"]:
        lines.append(f"  dead x{reason['count']}: {reason['reason']}")
    for file in status["spool_files"]:
        unreadable = "nothing readable" if file["unreadable_file"] else f"{file['unreadable']} unreadable"
        lines.append(f"spool file {file['event']} at {file['at']}: {file['salvaged']} events salvaged, {unreadable}"
                     + (f" ({file['path']})" if file["path"] else ""))
    lines += _park_lines(status.get("park"))
    out.write("\n".join(lines) + "\n")


def _park_lines(park: dict[str, Any] | None) -> list[str]:
    """The park tier's lines of ``--status``: segments on the volume and the oldest one's age."""
    if park is None:
        return ["parked:           - (no TRACKING_PARK_VOLUME: pending events live only on this disk)"]
    segments = park.get("parked_segments") or []
    oldest = park.get("oldest_parked_age_s")
    lines = [f"parked:           {len(segments)} segment(s) on {park['park_volume']}"
             + (f", oldest {_age(oldest)} old" if oldest is not None else "")
             + f"; {park.get('parked_local', 0)} parked from this spool"]
    if park.get("park_failed"):
        lines.append(f"  could not park:  {park['park_failed']} pending events (still in the spool)")
    if park.get("volume_error"):
        lines.append(f"  volume error:    {park['volume_error']}")
    elif park.get("last_park_error"):
        lines.append(f"  last park error: {park['last_park_error']} (at {park.get('last_park_error_at')})")
    return lines


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


if __name__ == "__main__":
    sys.exit(main())
