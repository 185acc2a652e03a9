"""Benchmark of the usage reports on the local spool: every named report over 1,000,000 spooled events.

Builds a spool file with the real schema and migrations (including the reports' index), fills it quickly with
``executemany`` in one transaction (events spread evenly over the last ``--span-days`` days up to now, 200 users, the
spec's actions in realistic proportions, ~6 % errors, 90 % delivered / 10 % pending), then runs each report
``--runs`` times on the spool and prints the median (and min/max) per report, plus ``get_usage_stats`` offline.
Each report uses its own default window (daily_active_users: all time; popular/sql_editing/funnel/percentiles/
error_rate: 7 days; error_analysis: 1 day; error_trend/activity_per_user: 30 days).

Target: <= 300 ms per report on this machine. The last line printed is one summary line with the slowest report.

Usage: python benchmarks/bench_reports.py [--events 1000000] [--span-days 30] [--runs 5] [--spool PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctg_app.settings import Settings  # noqa: E402
from ctg_app.tracking.recording.actions import Actions  # noqa: E402
from ctg_app.tracking.recording.event import EVENT_COLUMNS  # noqa: E402
from ctg_app.tracking.analytics.reports import REPORTS, run_on_spool  # noqa: E402
from ctg_app.tracking.recording.spool import Spool  # noqa: E402

APP = "elevio-ctg-chatbot-vanna"
WEIGHTS = {
    Actions.GENERATE_QUESTION: 20, Actions.SQL_QUERY: 18, Actions.EXECUTE_SQL: 17, Actions.DOWNLOAD_RESULTS: 5,
    Actions.EDIT_SQL: 4, Actions.GENERATE_CHART: 8, Actions.GENERATE_SUMMARY: 8, Actions.APP_START: 5,
    Actions.VIEW_RANDOM_QUESTIONS: 3, Actions.SELECT_COLUMNS: 2, Actions.SQL_ERROR: 3, Actions.LLM_ERROR: 1,
    Actions.DATABASE_ERROR: 1, Actions.CHART_ERROR: 1, Actions.APP_ERROR: 1,
}
OPERATION_OF_ERROR = {Actions.SQL_ERROR: Actions.EXECUTE_SQL, Actions.LLM_ERROR: Actions.SQL_QUERY,
                      Actions.DATABASE_ERROR: Actions.EXECUTE_SQL, Actions.CHART_ERROR: Actions.GENERATE_CHART,
                      Actions.APP_ERROR: None}


def fill(path: Path, events: int, span_days: int, seed: int = 1) -> float:
    """Create the spool at ``path`` and insert ``events`` rows; returns seconds taken."""
    started = time.perf_counter()
    Spool(path).connection()  # schema + migrations (indexes) exactly as the app creates them
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    rnd = random.Random(seed)
    actions = [a for a, w in WEIGHTS.items() for _ in range(w)]
    users = [f"user{i:03d}@eleviogroup.com" for i in range(200)]
    end = datetime.now(timezone.utc).replace(tzinfo=None)
    start = end - timedelta(days=span_days)
    start_s = int(start.timestamp() - start.timestamp() % 1)
    step_us = int(span_days * 86400 * 1_000_000 / events)
    columns = (*EVENT_COLUMNS, "state")
    sql = f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    second_text: dict[int, str] = {}
    delivered_until = int(events * 0.9)
    conn.execute("BEGIN")
    batch = []
    for i in range(events):
        offset_us = i * step_us
        second = start_s + offset_us // 1_000_000
        text = second_text.get(second)
        if text is None:
            second_text.clear()
            text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
            second_text[second] = text
        action = rnd.choice(actions)
        error = action in OPERATION_OF_ERROR
        operation = OPERATION_OF_ERROR[action] if error else action
        batch.append((
            f"{i:08x}-0000-7000-8000-{rnd.getrandbits(48):012x}", f"{text}.{offset_us % 1_000_000:06d}", APP,
            rnd.choice(users), action, operation, "error" if error else "ok", "RuntimeError" if error else None,
            "boom" if error else None, round(rnd.lognormvariate(5, 1), 3), None, "{}",
            "delivered" if i < delivered_until else "pending",
        ))
        if len(batch) == 100_000:
            conn.executemany(sql, batch)
            batch.clear()
    conn.executemany(sql, batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--span-days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--spool", type=Path, help="reuse/create this spool file (default: a temporary one)")
    args = parser.parse_args(argv)

    tmp = None
    path = args.spool
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-reports-")
        path = Path(tmp.name) / "spool.sqlite3"
    if not path.exists():
        seconds = fill(path, args.events, args.span_days)
        print(f"filled {path} with {args.events:,} events over {args.span_days} days in {seconds:.1f} s "
              f"({os.path.getsize(path) / 1e6:.0f} MB)")
    spool = Spool(path)
    total = spool.connection().execute("SELECT COUNT(*) FROM events").fetchone()[0]
    print(f"spool rows: {total:,}; runs per report: {args.runs} (first run discarded as warm-up)")

    results: dict[str, float] = {}
    for name, spec in REPORTS.items():
        timings = []
        rows = 0
        for run in range(args.runs + 1):
            t0 = time.perf_counter()
            frame = run_on_spool(name, spool, app_name=APP)
            elapsed = time.perf_counter() - t0
            rows = len(frame)
            if run:
                timings.append(elapsed)
        median = statistics.median(timings)
        results[name] = median
        window = "all time" if spec.default_days is None else f"{spec.default_days} d"
        print(f"{name:22s} window {window:8s} median {median * 1000:7.1f} ms  "
              f"(min {min(timings) * 1000:6.1f}, max {max(timings) * 1000:6.1f})  rows={rows}")

    from ctg_app.tracking.analytics.stats import get_usage_stats

    timings = []
    settings = Settings(spool_path=path, app_name=APP)
    for run in range(args.runs + 1):
        t0 = time.perf_counter()
        stats = get_usage_stats(days=7, settings=settings, spool=spool)
        if run:
            timings.append(time.perf_counter() - t0)
    print(f"{'get_usage_stats(7 d)':22s} {'':15s} median {statistics.median(timings) * 1000:7.1f} ms  "
          f"(total_events={stats.total_events:,}, source={stats.source})")

    slowest = max(results, key=results.get)
    verdict = "OK" if results[slowest] <= 0.300 else "OVER TARGET"
    print(f"SUMMARY reports={len(results)} events={total} slowest={slowest} {results[slowest] * 1000:.1f}ms "
          f"target<=300ms {verdict}")
    spool.close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
