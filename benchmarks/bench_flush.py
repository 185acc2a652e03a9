"""Benchmark of the flush against the local fake warehouse (prints figures; not a test).

In one run:
  (a) a naive flush: one parameterised INSERT per event through the same connector;
  (b) ``flush-spool`` (as a subprocess, the real command) on a spool of events;
  events/s of each and the ratio b/a; statements per 1,000 events;
  then 1,000,000 pending events flushed by ``flush-spool``: total time and the flush process's peak RSS (its VmHWM).
Targets: b/a >= 50, <= 1 statement per 1,000 events, 1M events in <= 60 s, peak RSS <= 200 MB.
The last line printed is one summary line with these four figures.

    .venv/bin/python benchmarks/bench_flush.py [--naive 2000] [--events 100000] [--million 1000000] [--batch-size 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from databricks import sql  # noqa: E402

from fake_databricks import FakeWarehouse  # noqa: E402
from ctg_app.tracking.recording.event import EVENT_COLUMNS  # noqa: E402
from ctg_app.tracking.delivery.databricks_sink import create_table_sql  # noqa: E402
from ctg_app.tracking.recording.spool import Spool  # noqa: E402

TABLE = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"
ACTIONS = ["app_start", "generate_question", "sql_query", "execute_sql", "edit_sql", "download_results",
           "generate_summary", "sql_error"]


def events(n: int, prefix: str, first: int = 0) -> list[tuple]:
    """Realistic event tuples (EVENT_COLUMNS order), numbered from ``first``."""
    rng = random.Random(n + first)
    start = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=1)
    out = []
    for i in range(first, first + n):
        action = ACTIONS[i % len(ACTIONS)]
        error = action == "sql_error"
        ts = (start + timedelta(microseconds=3 * i)).isoformat(sep=" ", timespec="microseconds")
        out.append((f"{prefix}-{i:09d}-{rng.getrandbits(48):012x}", ts, "elevio-ctg-chatbot-vanna",
                    f"user{i % 40}@eleviogroup.com", action, action, "error" if error else "ok",
                    "SqlValidationError" if error else None, "column x does not exist" if error else None,
                    round(rng.random() * 900, 3), f"{rng.getrandbits(64):016x}", '{"rows": 12}'))
    return out


def fill_spool(path: str, n: int, prefix: str, chunk: int = 50_000) -> None:
    """A spool of ``n`` pending events, inserted with executemany in chunks (this process never holds them all:
    a big heap here would slow the in-process fake warehouse's garbage collections)."""
    spool = Spool(path)
    for first in range(0, n, chunk):
        rows = events(min(chunk, n - first), prefix, first)
        with spool.transaction() as conn:
            conn.executemany(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                             rows)
    spool.close()


def naive_flush(wh: FakeWarehouse, rows: list[tuple]) -> float:
    """One INSERT per event (what a simple implementation does); returns seconds."""
    insert = (f"INSERT INTO {TABLE} ({', '.join(f'`{c}`' for c in EVENT_COLUMNS)}) VALUES "
              f"({', '.join(':' + c for c in EVENT_COLUMNS)})")
    t0 = time.perf_counter()
    with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:
        for row in rows:
            params = dict(zip(EVENT_COLUMNS, row))
            params["timestamp"] = datetime.fromisoformat(row[1])
            cur.execute(insert, params)
    return time.perf_counter() - t0


# Runs the real command's entry point, then reports the process's own peak RSS (VmHWM). The child's wait4 /
# RUSAGE_CHILDREN ru_maxrss is NOT used: Linux carries the parent's high-water mark across fork/exec into it.
_CHILD = (
    "import sys\n"
    "from ctg_app.tracking.delivery.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "sys.stderr.write(f'VMHWM_KB {hwm}\\n')\n"
    "sys.exit(code)\n"
)


def flush_spool(wh: FakeWarehouse, spool_path: str, batch_size: int) -> tuple[float, float, dict]:
    """Run ``flush-spool`` in a subprocess; returns (seconds, its peak RSS in MB, its JSON report)."""
    env = {**os.environ, **wh.env(), "TRACKING_SPOOL_PATH": spool_path, "WAREHOUSE_TIMEOUT_S": "30"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, "--json", "--batch-size", str(batch_size)], env=env,
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    report = json.loads(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"flush-spool exited {proc.returncode}: {report.get('error')}")
    hwm_kb = int(proc.stderr.rsplit("VMHWM_KB ", 1)[1].split()[0])
    return seconds, hwm_kb / 1024, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive", type=int, default=2000, help="events for the naive INSERT-per-event flush")
    parser.add_argument("--events", type=int, default=100_000, help="events for the flush-spool throughput run")
    parser.add_argument("--million", type=int, default=1_000_000, help="events for the big run")
    parser.add_argument("--batch-size", type=int, default=4000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-flush-"))

    with FakeWarehouse() as wh:
        wh.query(create_table_sql(TABLE))
        print(f"fake warehouse at {wh.uri}; batch size {args.batch_size}")

        naive_rows = events(args.naive, "naive")
        wh.reset_stats()
        naive_s = naive_flush(wh, naive_rows)
        del naive_rows
        naive_rate = args.naive / naive_s
        naive_per_k = wh.statement_count / args.naive * 1000
        print(f"(a) naive INSERT per event: {args.naive} events in {naive_s:.2f} s = {naive_rate:,.0f} events/s, "
              f"{naive_per_k:.0f} statements per 1,000 events")

        fill_spool(str(tmp / "b.sqlite3"), args.events, "b")
        wh.reset_stats()
        b_s, b_rss, b_report = flush_spool(wh, str(tmp / "b.sqlite3"), args.batch_size)
        b_rate = args.events / b_s
        merges = sum(1 for s in wh.statements if s.lstrip().startswith("MERGE"))
        per_k = wh.statement_count / args.events * 1000
        assert b_report["delivered"] == args.events and b_report["inserted"] == args.events, b_report
        print(f"(b) flush-spool: {args.events:,} events in {b_s:.2f} s (process start included) = "
              f"{b_rate:,.0f} events/s; {wh.statement_count} statements ({merges} MERGE) = {per_k:.3f} per 1,000 "
              f"events; peak RSS {b_rss:.0f} MB")
        ratio = b_rate / naive_rate
        print(f"ratio b/a = {ratio:,.0f}x")

        print(f"building a spool of {args.million:,} pending events ...", flush=True)
        fill_spool(str(tmp / "m.sqlite3"), args.million, "m")
        wh.reset_stats()
        m_s, m_rss, m_report = flush_spool(wh, str(tmp / "m.sqlite3"), args.batch_size)
        got = wh.query(f"SELECT COUNT(*), COUNT(DISTINCT event_id) FROM {TABLE} WHERE event_id LIKE 'm-%'")[0]
        assert m_report["delivered"] == args.million and got == (args.million, args.million), (m_report, got)
        m_per_k = wh.statement_count / args.million * 1000
        print(f"(c) {args.million:,} events: {m_s:.1f} s ({args.million / m_s:,.0f} events/s), "
              f"{wh.statement_count} statements ({m_per_k:.3f} per 1,000), peak RSS {m_rss:.0f} MB; "
              f"warehouse rows {got[0]:,}, distinct ids {got[1]:,}")

    targets = [ratio >= 50, per_k <= 1, m_s <= 60, m_rss <= 200]
    print(f"SUMMARY b/a={ratio:.0f}x (>=50) statements/1k={per_k:.2f} (<=1) 1M={m_s:.1f}s (<=60) "
          f"peakRSS={m_rss:.0f}MB (<=200) -> {sum(targets)}/4 targets met")


if __name__ == "__main__":
    main()
