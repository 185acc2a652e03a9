"""A writer process for the integrity tests: ``python -m tests.tracking.phased_writer SPOOL TAG BEFORE AFTER GO``.

It makes BEFORE tracked calls, prints ``PAUSED`` and waits until the file GO exists (meanwhile the test damages,
moves or deletes the spool), then makes AFTER more calls and prints ``DONE <failures> <dropped>``: the failures the
guard swallowed and the events it counted as dropped. Each event carries ``{"tag": TAG, "i": i}`` in its details.
With ``WRITER_IN_THREAD=1`` the calls run in a worker thread that ends before the process exits.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from ctg_app.settings import Settings
from ctg_app.tracking import Actions, Tracker, health, set_tracker, tracked


@tracked(Actions.EXECUTE_SQL, capture=("tag", "i"))
def work(tag: str, i: int) -> int:
    return i


def main() -> None:
    path, tag, before, after, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    busy_ms = int(os.environ.get("WRITER_BUSY_MS", "30000"))
    set_tracker(Tracker(Settings(spool_path=path, spool_busy_timeout_ms=busy_ms)))

    def run() -> None:
        for i in range(before):
            work(tag, i)
        print("PAUSED", flush=True)
        deadline = time.monotonic() + 120
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(before, before + after):
            work(tag, i)

    if os.environ.get("WRITER_IN_THREAD"):  # a worker thread, ended before exit (its connection dies with it)
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    else:
        run()
    print(f"DONE {sum(health.failures.values())} {health.dropped_events}", flush=True)


if __name__ == "__main__":
    main()
