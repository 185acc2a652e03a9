"""A writer process for the concurrency and crash tests: ``python -m tests.tracking.spool_writer SPOOL THREADS N``.

Each thread makes N tracked calls; after each call returns (the event is committed) the thread's running count is
printed, so a parent that kills this process knows which events were committed. At the end it prints
``DROPPED <n>`` (drops not yet persisted in the spool) and ``DONE <failures>``, the number of tracking failures the
guard swallowed. Optional fourth argument ``bounded``: keep the default request-path lock wait instead of a patient one.

Gates (environment): ``WRITER_GATES=300,700`` and ``WRITER_GATE_DIR=DIR`` make each thread stop after its 300th call
(its count printed, its connection still open) until the file ``DIR/gate-300`` exists, and so on: a test can change
the spool at those exact points while every writer is alive and mid-stream, however slowly it reads the output.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from ctg_app.settings import Settings
from ctg_app.tracking import Actions, Tracker, health, set_tracker, tracked


@tracked(Actions.EXECUTE_SQL, capture=("i",))
def work(i: int) -> int:
    return i


def _wait_for(gate: str) -> None:
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.005)


def main() -> None:
    path, threads, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Patient by default (this helper proves concurrency loses nothing); "bounded" keeps the 100 ms request-path bound.
    patient = {} if len(sys.argv) > 4 and sys.argv[4] == "bounded" else {"request_lock_wait_ms": 30_000}
    set_tracker(Tracker(Settings(spool_path=path, spool_busy_timeout_ms=30_000, **patient)))
    lock = threading.Lock()
    done = [0]
    gates = {int(n) for n in os.environ.get("WRITER_GATES", "").split(",") if n.strip()}
    gate_dir = os.environ.get("WRITER_GATE_DIR", "")

    def run() -> None:
        for i in range(count):
            assert work(i) == i
            with lock:
                done[0] += 1
                sys.stdout.write(f"{done[0]}\n")
                sys.stdout.flush()
            if i + 1 in gates:
                _wait_for(os.path.join(gate_dir, f"gate-{i + 1}"))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(f"DROPPED {health.dropped_events}", flush=True)
    print(f"DONE {sum(health.failures.values())}", flush=True)


if __name__ == "__main__":
    main()
