"""``ctg-app selftest`` — the spec's ``test_usage_tracking.py``: does tracking work in *this* environment?

Checks, in order, and prints a checklist with the likely fix for each failure:

1. basic action tracking — one event recorded into the configured spool and read back;
2. error tracking — an exception recorded as its classified error action (``sql_error``), status ``error``;
3. spool health — pending backlog, oldest pending age, dead letters, dropped events (warnings, not failures);
4. delivery to the warehouse (only when Databricks is configured) — the spool flushed and the test event read back
   from the central table;
5. usage statistics — ``get_usage_stats`` finds the test events.

Test events are recorded under the app name ``<TRACKING_APP_NAME>-selftest`` (``elevio-ctg-chatbot-vanna-selftest``),
so they never show up in the real app's reports. Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from ctg_app.settings import Settings, get_settings

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
SELFTEST_SUFFIX = "-selftest"


@dataclass
class Check:
    """One line of the checklist."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def selftest_app_name(settings: Settings) -> str:
    """The app name test events are recorded under."""
    return settings.app_name + SELFTEST_SUFFIX


def run_checks(settings: Settings | None = None) -> list[Check]:
    """Run every check; never raises."""
    from ctg_app.tracking.recording.tracker import Tracker

    settings = settings or get_settings()
    test_settings = settings.replace(app_name=selftest_app_name(settings), tracking_enabled=True)
    checks: list[Check] = []
    tracker = None
    event = error_event = None

    # 1. basic action tracking
    try:
        from ctg_app.tracking.recording.spool import Spool

        # a CLI: the flush below may wait the full TRACKING_SPOOL_BUSY_TIMEOUT_MS for a lock, unlike the request path
        tracker = Tracker(test_settings, spool=Spool.from_settings(test_settings))
        event = tracker.record_unguarded("selftest", operation="selftest", duration_ms=1.0,
                                         details={"selftest": True}, user=settings.default_user)
        if not tracker.spool.has_event(event.event_id):
            raise RuntimeError("the event was not found in the spool after the insert")
        checks.append(Check("basic action tracking", PASS, f"event {event.event_id} in spool {tracker.spool.path}"))
    except Exception as exc:  # noqa: BLE001 - the checklist reports every failure
        checks.append(Check("basic action tracking", FAIL, f"{type(exc).__name__}: {exc}",
                            f"check TRACKING_SPOOL_PATH ({settings.spool_path}) is on a writable disk with free space"))

    # 2. error tracking
    try:
        if tracker is None:
            raise RuntimeError("no tracker (see the previous check)")
        from ctg_app.errors import SqlValidationError

        error_event = tracker.record_error(SqlValidationError("selftest: invalid SQL"), operation="execute_sql",
                                           duration_ms=1.0)
        if error_event is None or error_event.action != "sql_error" or error_event.status != "error":
            raise RuntimeError(f"recorded as {getattr(error_event, 'action', None)!r}, expected 'sql_error'")
        checks.append(Check("error tracking", PASS, "SqlValidationError recorded as sql_error (status error)"))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("error tracking", FAIL, f"{type(exc).__name__}: {exc}",
                            "see the log above; the error classifier or the spool failed"))

    # 3. spool health
    checks.append(_spool_health(tracker, settings))

    # 4. delivery
    checks.append(_delivery(settings, event, tracker))

    # 5. usage statistics
    try:
        from ctg_app.tracking.analytics.stats import get_usage_stats

        stats = get_usage_stats(days=0, settings=test_settings, spool=tracker.spool if tracker else None)
        expected = sum(1 for e in (event, error_event) if e is not None)
        if stats.total_events < expected:
            raise RuntimeError(f"found {stats.total_events} test events, expected at least {expected}")
        detail = f"{stats.total_events} test events today, {stats.error_count} errors (source: {stats.source})"
        if stats.notice:
            detail += f"; {stats.notice}"
        checks.append(Check("usage statistics", PASS, detail))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("usage statistics", FAIL, f"{type(exc).__name__}: {exc}",
                            "get_usage_stats could not read the spool/warehouse; see the checks above"))
    if tracker is not None:
        tracker.spool.close()
    return checks


def _spool_health(tracker: Any, settings: Settings) -> Check:
    if tracker is None:
        return Check("spool health", FAIL, "spool not usable", f"check TRACKING_SPOOL_PATH ({settings.spool_path})")
    try:
        from ctg_app.tracking.delivery.leases import Delivery

        status = Delivery(tracker.spool).status()
    except Exception as exc:  # noqa: BLE001
        return Check("spool health", FAIL, f"{type(exc).__name__}: {exc}", "the spool file may be damaged")
    age = status.get("oldest_pending_age_s")
    detail = (f"pending {status['pending']}, oldest pending age {'-' if age is None else f'{age:.0f} s'}, "
              f"dead {status['dead']}, dropped {status['dropped']}, last flush {status.get('last_success_at') or 'never'}")
    problems = []
    if status["dead"]:
        problems.append("dead letters: inspect with `flush-spool --status`, replay with `flush-spool --retry-dead`")
    if status["dropped"]:
        problems.append("events were dropped (spool unwritable or over SPOOL_MAX_MB): check disk space and the cap")
    if settings.warehouse_configured and age is not None and age > 3600:
        problems.append("old pending events: is `flush-spool` (or BACKGROUND_FLUSH) running?")
    return Check("spool health", WARN if problems else PASS, detail, "; ".join(problems) or None)


def _delivery(settings: Settings, event: Any, tracker: Any) -> Check:
    if not settings.warehouse_configured:
        return Check("delivery to the warehouse", SKIP,
                     "Databricks not configured (DATABRICKS_SERVER_HOSTNAME/HTTP_PATH/ACCESS_TOKEN): offline mode")
    if event is None or tracker is None:
        return Check("delivery to the warehouse", FAIL, "no test event to deliver", "fix the spool first")
    try:
        from ctg_app.tracking.delivery.flush import Flusher
        from ctg_app.tracking.analytics.reports import WarehouseReader, WarehouseUnavailable

        report = Flusher(settings, spool=tracker.spool).run(ignore_backoff=True, housekeeping=False)
        if report.error:
            return Check("delivery to the warehouse", FAIL, report.error,
                         report.advice or "see the message above and `flush-spool --status`")
        with WarehouseReader(settings) as reader:
            if "event_id" in reader.columns():
                _, rows = reader.fetch(f"SELECT COUNT(*) FROM {reader.table} WHERE event_id = :id",
                                       {"id": event.event_id})
            else:  # legacy four-column table
                _, rows = reader.fetch(f"SELECT COUNT(*) FROM {reader.table} WHERE app_name = :app AND action = "
                                       "'selftest'", {"app": event.app_name})
        if not rows or rows[0][0] < 1:
            return Check("delivery to the warehouse", FAIL, "flush reported success but the event is not in the table",
                         f"check TRACKING_TABLE ({settings.tracking_table}) and the flush logs")
        return Check("delivery to the warehouse", PASS,
                     f"flushed {report.delivered} event(s); test event read back from {settings.tracking_table}")
    except WarehouseUnavailable as exc:
        from ctg_app.warehouse.errors import advice, classify_error

        return Check("delivery to the warehouse", FAIL, str(exc), advice(classify_error(exc.__cause__ or exc)))
    except Exception as exc:  # noqa: BLE001
        from ctg_app.warehouse.connection import describe_error
        from ctg_app.warehouse.errors import advice, classify_error

        return Check("delivery to the warehouse", FAIL, describe_error(exc, settings), advice(classify_error(exc)))


def render(checks: list[Check], settings: Settings) -> str:
    """The checklist as text."""
    lines = [f"ctg-app selftest — test events under app_name {selftest_app_name(settings)!r}"]
    for check in checks:
        lines.append(f"[{check.status}] {check.name}: {check.detail}")
        if check.fix and check.status in (FAIL, WARN):
            lines.append(f"       fix: {check.fix}")
    failed = [c for c in checks if c.status == FAIL]
    lines.append(f"SELFTEST {'FAILED' if failed else 'PASSED'}: {len(checks) - len(failed)} of {len(checks)} checks "
                 f"ok" + (f" ({', '.join(c.name for c in failed)} failed)" if failed else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace | None = None, out=None) -> int:
    """Run the self-test, print the checklist; 0 when nothing failed, else 1."""
    from ctg_app.tracking.recording.tracker import reset_tracker

    out = out or sys.stdout
    started = time.monotonic()
    reset_tracker()
    settings = get_settings()
    checks = run_checks(settings)
    from ctg_app.console import console_redactor

    if getattr(args, "json", False):  # the same checks as data: {"passed", "seconds", "checks": [...]}
        import json
        from dataclasses import asdict

        doc = {"app_name": selftest_app_name(settings), "passed": not any(c.status == FAIL for c in checks),
               "seconds": round(time.monotonic() - started, 1), "checks": [asdict(c) for c in checks]}
        print(console_redactor()(json.dumps(doc, indent=2)), file=out)
        return 1 if any(c.status == FAIL for c in checks) else 0
    print(console_redactor()(render(checks, settings)), file=out)  # a detail may quote a setting holding a secret
    print(f"({time.monotonic() - started:.1f} s)", file=out)
    return 1 if any(c.status == FAIL for c in checks) else 0


def add_selftest(subparsers: argparse._SubParsersAction) -> None:
    """Register ``ctg-app selftest`` (for ``ctg_app.cli.COMMANDS``)."""
    parser = subparsers.add_parser("selftest", help="check tracking end to end in this environment (checklist)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    parser.set_defaults(func=run)


if __name__ == "__main__":
    sys.exit(run())
