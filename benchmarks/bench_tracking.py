"""Benchmark of the tracking request path: how much does ``@tracked`` cost over the SQLite floor?

Prints, in one run (figures are only comparable within a run on this shared machine):
  (a) a bare function call, (b) a raw sqlite3 insert + commit of the same row into the same schema (WAL, NORMAL) — the
  floor, (c) a ``@tracked`` call; p50/p99 of each and the ratio c/b;
  then aggregate events/s of 4 processes x 2 threads with (d) raw inserts and (e) ``@tracked`` calls, the ratio e/d and
  the row counts checked.
The last line is a summary with the three ratios. Targets: p50(c) <= 1.3 x p50(b), p99(c) <= 2 ms, e/d >= 0.75, 0 lost.

Usage: python benchmarks/bench_tracking.py [--calls 20000] [--per-thread 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctg_app.settings import Settings  # noqa: E402
from ctg_app.tracking import Actions, Spool, Tracker, set_tracker, tracked  # noqa: E402
from ctg_app.tracking.recording.event import Event, new_id_and_timestamp  # noqa: E402
from ctg_app.tracking.recording.spool import _INSERT  # noqa: E402

PROCESSES, THREADS = 4, 2


def sample_row() -> Event:
    event_id, timestamp = new_id_and_timestamp()
    return Event(event_id, timestamp, "elevio-ctg-chatbot-vanna",
                 "ctg_chatbot_user@eleviogroup.com", "execute_sql", "execute_sql", "ok", None, None, 1.234, None, "{}")


def raw_connection(path: Path) -> sqlite3.Connection:
    Spool(path).connection()  # same schema and indexes as the real spool
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def use_spool(path: Path) -> None:
    set_tracker(Tracker(Settings(spool_path=path)))


@tracked(Actions.EXECUTE_SQL)
def tracked_noop() -> int:
    return 1


def noop() -> int:
    return 1


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    qs = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return statistics.median(samples_ns) / 1000, qs[98] / 1000  # microseconds


def latency(workdir: Path, calls: int) -> dict[str, tuple[float, float]]:
    """(a), (b), (c) measured in alternating blocks so machine noise hits all three alike."""
    conn = raw_connection(workdir / "raw.sqlite3")
    use_spool(workdir / "tracked.sqlite3")
    row = sample_row()
    timings: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    clock = time.perf_counter_ns
    bodies = {"a": noop, "b": lambda: conn.execute(_INSERT, row), "c": tracked_noop}
    for body in bodies.values():  # warm-up
        for _ in range(200):
            body()
    block = 500
    for _ in range(max(1, calls // block)):
        for name, body in bodies.items():
            out = timings[name]
            for _ in range(block):
                start = clock()
                body()
                out.append(clock() - start)
    return {name: percentiles(values) for name, values in timings.items()}


def _worker(kind: str, path: str, per_thread: int, start_evt, results) -> None:
    spool_path = Path(path)
    if kind == "tracked":
        use_spool(spool_path)
        tracked_noop()  # open and migrate before the clock starts (one event per process, subtracted below)
    conns = [raw_connection(spool_path) for _ in range(THREADS)] if kind == "raw" else []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            if kind == "raw":
                row, conn = sample_row(), conns[i]
                for _ in range(per_thread):
                    conn.execute(_INSERT, row)
            else:
                for _ in range(per_thread):
                    tracked_noop()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    start_evt.wait()
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((began, time.time(), repr(errors[0]) if errors else None))


def throughput(workdir: Path, kind: str, per_thread: int) -> tuple[float, int, int]:
    """Aggregate events/s of PROCESSES x THREADS writers; returns (events/s, rows found, rows expected)."""
    workdir.mkdir(exist_ok=True)
    path = workdir / f"concurrent-{kind}.sqlite3"
    Spool(path).connection()
    ctx = mp.get_context("fork")
    start_evt, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, str(path), per_thread, start_evt, results))
             for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every process open its connections
    start_evt.set()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    failures = [err for _, _, err in spans if err]
    if failures:
        raise SystemExit(f"{kind} writers failed: {failures[0]}")
    elapsed = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    expected = PROCESSES * THREADS * per_thread
    kept_warmup = PROCESSES if kind == "tracked" else 0
    found = sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone()[0] - kept_warmup
    return expected / elapsed, found, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000, help="calls per latency series")
    parser.add_argument("--per-thread", type=int, default=3000, help="events per writer thread")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of (d) and (e)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        workdir = Path(tmp)
        lat = latency(workdir, args.calls)
        for name, label in (("a", "bare call"), ("b", "raw sqlite3 insert+commit"), ("c", "@tracked call")):
            p50, p99 = lat[name]
            print(f"({name}) {label:<28} p50 {p50:8.1f} us   p99 {p99:8.1f} us")
        ratio_cb = lat["c"][0] / lat["b"][0]
        print(f"p50 ratio c/b = {ratio_cb:.2f} (target <= 1.30); p99(c) = {lat['c'][1] / 1000:.2f} ms (target <= 2 ms)")
        rates: dict[str, list[float]] = {"raw": [], "tracked": []}
        lost = 0
        for round_number in range(args.rounds):  # alternate d and e so a noisy moment does not favour one
            for kind in ("raw", "tracked"):
                rate, found, expected = throughput(workdir / f"r{round_number}", kind, args.per_thread)
                rates[kind].append(rate)
                lost += expected - found
        raw_rate, tr_rate = statistics.median(rates["raw"]), statistics.median(rates["tracked"])
        total = PROCESSES * THREADS * args.per_thread
        print(f"(d) raw      {PROCESSES}x{THREADS} writers: median {raw_rate:9.0f} events/s over {args.rounds} rounds "
              f"of {total} events ({', '.join(f'{r:.0f}' for r in rates['raw'])})")
        print(f"(e) @tracked {PROCESSES}x{THREADS} writers: median {tr_rate:9.0f} events/s over {args.rounds} rounds "
              f"of {total} events ({', '.join(f'{r:.0f}' for r in rates['tracked'])})")
        print(f"rows lost across all rounds: {lost}")
        ratio_ed = tr_rate / raw_rate
        print(f"SUMMARY p50 c/b={ratio_cb:.2f} p99(c)={lat['c'][1] / 1000:.3f}ms e/d={ratio_ed:.2f} lost={lost} "
              f"(cpus={os.cpu_count()})")


if __name__ == "__main__":
    main()
