"""Benchmark of the tracking request path: ``@tracked`` against plain SQLite, side by side in one run.

The floor ("raw") is a plain sqlite3 ``INSERT`` in autocommit mode (its own commit) of a prebuilt event row into a
spool file with the same table and indexes (WAL, synchronous=NORMAL, busy_timeout 5 s): no tracking code at all.
"Tracked" is a ``@tracked`` no-op function recording into its own spool through the real recorder (default settings:
the 100 ms request-path bound).

For 1, 2x2 and 4x2 writers (processes x threads, all starting at one instant, ``--per-thread`` calls each) it runs raw
and tracked alternately ``--reps`` times (the order flips every repetition, so machine noise hits both; the single
writer alternates blocks of 100 calls within one process) and prints,
per writer count, the medians of both and, side by side:
  throughput ratio = tracked events/s / raw events/s      (target >= 0.90 for 4x2)
  p50 ratio        = tracked per-call p50 / raw p50        (target <= 1.30 for 1 writer)
plus the rows lost (acknowledged but not in the spool, drops included; target 0).

Usage: python benchmarks/bench_tracking.py [--per-thread 1000] [--reps 5]
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
from ctg_app.tracking import Actions, Spool, Tracker, health, set_tracker, tracked  # noqa: E402
from ctg_app.tracking.recording.event import Event, new_id_and_timestamp  # noqa: E402
from ctg_app.tracking.recording.spool import _INSERT  # noqa: E402

CONFIGS = ((1, 1), (2, 2), (4, 2))  # (processes, threads)


def sample_row() -> Event:
    event_id, timestamp = new_id_and_timestamp()
    return Event(event_id, timestamp, "elevio-ctg-chatbot-vanna",
                 "ctg_chatbot_user@eleviogroup.com", "execute_sql", "execute_sql", "ok", None, None, 1.234, None, "{}")


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@tracked(Actions.EXECUTE_SQL)
def tracked_noop() -> int:
    return 1


def _worker(kind: str, path: str, threads: int, per_thread: int, ready, start_evt, results) -> None:
    if kind == "tracked":
        set_tracker(Tracker(Settings(spool_path=Path(path))))
        tracked_noop()  # open the connection before the clock starts (one event per process, subtracted below)
    conns = [raw_connection(Path(path)) for _ in range(threads)] if kind == "raw" else []
    samples: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    clock = time.perf_counter_ns

    def run(i: int) -> None:
        out = samples[i]
        try:
            if kind == "raw":
                row, execute = sample_row(), conns[i].execute
                for _ in range(per_thread):
                    began = clock()
                    execute(_INSERT, row)
                    out.append(clock() - began)
            else:
                for _ in range(per_thread):
                    began = clock()
                    tracked_noop()
                    out.append(clock() - began)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    ready.release()
    start_evt.wait()
    began = time.time()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    ended = time.time()
    results.put((began, ended, [s for part in samples for s in part], health.dropped_events,
                 repr(errors[0]) if errors else None))


def run_once(workdir: Path, kind: str, processes: int, threads: int, per_thread: int) -> tuple[float, float, int]:
    """One run of ``processes`` x ``threads`` writers: (events/s, per-call p50 in us, events lost)."""
    path = workdir / f"{kind}-{processes}x{threads}-{time.monotonic_ns()}.sqlite3"
    Spool(path).connection()  # the same schema and indexes for both
    ctx = mp.get_context("fork")
    ready, start_evt, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, str(path), threads, per_thread, ready, start_evt, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    time.sleep(0.1)
    start_evt.set()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    failures = [err for *_, err in spans if err]
    if failures:
        raise SystemExit(f"{kind} writers failed: {failures[0]}")
    elapsed = max(s[1] for s in spans) - min(s[0] for s in spans)
    expected = processes * threads * per_thread
    warmup = processes if kind == "tracked" else 0
    found = sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone()[0] - warmup
    p50 = statistics.median(s for span in spans for s in span[2]) / 1000
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return expected / elapsed, p50, expected - found


def run_single(workdir: Path, calls: int) -> dict[str, tuple[float, float, int]]:
    """One writer, raw and tracked in one process in alternating blocks of 100 calls (so a noisy moment hits both):
    per kind (events/s over its own blocks, per-call p50 in us, events lost)."""
    raw_path, tr_path = workdir / f"raw-1-{time.monotonic_ns()}.sqlite3", workdir / f"tracked-1-{time.monotonic_ns()}.sqlite3"
    Spool(raw_path).connection()
    conn = raw_connection(raw_path)
    set_tracker(Tracker(Settings(spool_path=tr_path)))
    tracked_noop()  # opens the connection (subtracted below)
    row = sample_row()
    bodies = {"raw": lambda: conn.execute(_INSERT, row), "tracked": tracked_noop}
    samples: dict[str, list[int]] = {"raw": [], "tracked": []}
    clock = time.perf_counter_ns
    for block in range(max(1, calls // 100)):
        for kind in (("raw", "tracked") if block % 2 == 0 else ("tracked", "raw")):
            body, out = bodies[kind], samples[kind]
            for _ in range(100):
                began = clock()
                body()
                out.append(clock() - began)
    set_tracker(None)
    result = {}
    for kind, path, extra in (("raw", raw_path, 0), ("tracked", tr_path, 1)):
        found = sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone()[0] - extra
        result[kind] = (len(samples[kind]) / (sum(samples[kind]) / 1e9), statistics.median(samples[kind]) / 1000,
                        len(samples[kind]) - found)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-thread", type=int, default=1000, help="calls per writer thread")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (raw and tracked alternate)")
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        workdir = Path(tmp)
        for processes, threads in CONFIGS:
            runs: dict[str, list[tuple[float, float, int]]] = {"raw": [], "tracked": []}
            for rep in range(args.reps):
                if processes * threads == 1:
                    for kind, figures in run_single(workdir, args.per_thread).items():
                        runs[kind].append(figures)
                    continue
                order = ("raw", "tracked") if rep % 2 == 0 else ("tracked", "raw")
                for kind in order:
                    runs[kind].append(run_once(workdir, kind, processes, threads, args.per_thread))
            raw_rate = statistics.median(r[0] for r in runs["raw"])
            tr_rate = statistics.median(r[0] for r in runs["tracked"])
            raw_p50 = statistics.median(r[1] for r in runs["raw"])
            tr_p50 = statistics.median(r[1] for r in runs["tracked"])
            lost = sum(r[2] for r in runs["tracked"])
            raw_lost = sum(r[2] for r in runs["raw"])
            label = "1" if processes * threads == 1 else f"{processes}x{threads}"
            lines.append(
                f"{label:>4} writers: raw {raw_rate:7.0f} ev/s p50 {raw_p50:6.1f} us | tracked {tr_rate:7.0f} ev/s "
                f"p50 {tr_p50:6.1f} us | throughput ratio {tr_rate / raw_rate:.2f}  p50 ratio {tr_p50 / raw_p50:.2f}"
                f" | lost {lost} (raw {raw_lost})")
            print(lines[-1], flush=True)
    print(f"SUMMARY (medians of {args.reps} interleaved reps, {args.per_thread} calls/thread, "
          f"cpus={os.cpu_count()}):")
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    main()
