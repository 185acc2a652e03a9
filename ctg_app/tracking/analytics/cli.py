"""``ctg-app usage-report [--days N] [--user EMAIL] [--report NAME|all|stats] [--format table|csv|json] [--source ...]``.

Prints a named report (see ``ctg_app.tracking.analytics.reports.REPORTS``), every report (``all``), or the
``get_usage_stats`` summary (``stats``, the default). The warehouse is used when configured and reachable, otherwise
the local spool; a notice on stderr says which and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ctg_app.exit_codes import EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_USAGE
from ctg_app.tracking.analytics.reports import REPORTS, SOURCE_AUTO, SOURCE_SPOOL, SOURCE_WAREHOUSE, run_report

FORMATS = ("table", "csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``usage-report`` options (shared by the ``ctg-app`` subcommand and ``python -m``)."""
    parser.add_argument("--days", type=_days, default=None,
                        help="window: today plus N previous days, UTC (default: each report's own; stats: 7)")
    parser.add_argument("--user", default=None, help="only this user's events")
    parser.add_argument("--action", default=None, help="only this action's events")
    parser.add_argument("--report", default="stats",
                        help=f"stats (default), all, or one of: {', '.join(REPORTS)}")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--source", choices=(SOURCE_AUTO, SOURCE_WAREHOUSE, SOURCE_SPOOL), default=SOURCE_AUTO,
                        help="auto: the warehouse when configured and reachable, else the spool")


def _days(text: str) -> int:
    """``--days``: a whole number of days, 0 or more (argparse turns the error into exit 2 with this message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (today) or more, got {value}")
    return value


def run(args: argparse.Namespace, out=None, err=None) -> int:
    """Run the command; returns the exit status of :mod:`ctg_app.exit_codes` (2 bad report name, 3 configuration
    error, 4 warehouse unavailable with ``--source warehouse``)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if args.report == "stats":
        return _stats(args, out, err)
    names = list(REPORTS) if args.report == "all" else [args.report]
    unknown = [n for n in names if n not in REPORTS]
    if unknown:
        print(f"unknown report {unknown[0]!r}; choose stats, all, or one of: {', '.join(REPORTS)}", file=err)
        return EXIT_USAGE
    from ctg_app.warehouse.connection import WarehouseConfigError
    from ctg_app.tracking.analytics.reports import WarehouseUnavailable

    payload: list[dict[str, Any]] = []
    for name in names:
        kwargs: dict[str, Any] = {"user": args.user, "action": args.action, "source": args.source}
        if args.days is not None:
            kwargs["days"] = args.days
        try:
            result = run_report(name, **kwargs)
        except WarehouseUnavailable as exc:
            print(f"warehouse unavailable: {exc}", file=err)
            return EXIT_UNAVAILABLE
        except WarehouseConfigError as exc:  # e.g. TRACKING_TABLE is not catalog.schema.table
            print(f"configuration error: {exc}", file=err)
            return EXIT_CONFIG
        if result.notice:
            print(f"note: {result.notice}", file=err)
        if args.format == "json":
            payload.append(result.as_dict())
        elif args.format == "csv":
            if len(names) > 1:
                print(f"# {name}", file=out)
            result.frame.to_csv(out, index=False)
        else:
            window = "all time" if result.days is None else f"since {result.since} (UTC)"
            print(f"== {REPORTS[name].title} [{name}] — {window}, source: {result.source}", file=out)
            print(result.frame.to_string(index=False) if not result.empty else "(no events)", file=out)
            print(file=out)
    if args.format == "json":
        json.dump(payload[0] if len(payload) == 1 else payload, out, indent=2, default=str)
        print(file=out)
    return 0


def _stats(args: argparse.Namespace, out, err) -> int:
    from ctg_app.tracking.analytics.reports import WarehouseUnavailable
    from ctg_app.tracking.analytics.stats import get_usage_stats
    from ctg_app.warehouse.connection import WarehouseConfigError

    try:
        stats = get_usage_stats(args.user, 7 if args.days is None else args.days, source=args.source)
    except WarehouseUnavailable as exc:
        print(f"warehouse unavailable: {exc}", file=err)
        return EXIT_UNAVAILABLE
    except WarehouseConfigError as exc:
        print(f"configuration error: {exc}", file=err)
        return EXIT_CONFIG
    if stats.notice:
        print(f"note: {stats.notice}", file=err)
    if args.format == "json":
        json.dump(stats.as_dict(), out, indent=2, default=str)
        print(file=out)
        return 0
    if args.format == "csv":
        stats.daily.to_csv(out, index=False)
        return 0
    who = stats.user_email or "all users"
    print(f"Usage since {stats.since} (UTC, {stats.days} days + today) for {who} — source: {stats.source}", file=out)
    for label, value in (("events", stats.total_events), ("users", stats.unique_users),
                         ("active days", stats.active_days), ("errors", stats.error_count),
                         ("first seen", stats.first_seen), ("last seen", stats.last_seen)):
        print(f"  {label:12s} {value if value is not None else '-'}", file=out)
    if stats.actions:
        print("  per action:", file=out)
        for action, count in stats.actions.items():
            print(f"    {action:24s} {count}", file=out)
    if stats.errors_by_type:
        print("  errors per type:", file=out)
        for action, count in stats.errors_by_type.items():
            print(f"    {action:24s} {count}", file=out)
    print(file=out)
    print(stats.daily.to_string(index=False), file=out)
    return 0


def add_usage_report(subparsers: argparse._SubParsersAction) -> None:
    """Register ``ctg-app usage-report`` (for ``ctg_app.cli.COMMANDS``)."""
    parser = subparsers.add_parser("usage-report", help="usage statistics and named reports (table, csv or json)")
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """``python -m ctg_app.tracking.analytics.cli``."""
    parser = argparse.ArgumentParser(prog="ctg-app usage-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    from ctg_app.tracking.delivery.cli import add_common_options, apply_profile

    add_common_options(parser)
    args = parser.parse_args(argv)
    apply_profile(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
