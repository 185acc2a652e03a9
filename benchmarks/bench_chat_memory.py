"""Memory bombs in chat SQL: how much each one grows the app process, with the landed bounds and without them.

Each case runs in a fresh Python process (so one case's peak does not hide the next one's), through three paths:

- ``edit-sql``: what *Edit SQL* does - ``Assistant.run``: the chat SQL policy (its ``GuardedSource``), then the
  sample source's ``run_sql`` (``SQLITE_LIMIT_LENGTH`` = ``CHAT_MAX_VALUE_BYTES``, the fetch byte budget);
- ``engine``: the source's ``run_sql`` alone (the engine bounds without the policy in front);
- ``unbounded``: a plain ``sqlite3`` connection and ``fetchall()`` - the code before the bounds (with ``--unbounded``;
  it allocates up to ~1.5 GB per case).

Per case and path it prints the outcome (the exception that stopped it and its message, or ``ran``) and the growth of the
process's peak RSS (``ru_maxrss`` after the case minus before it, the source already warm). Then one process runs every
case in a row through ``edit-sql`` and through ``engine``, and the last lines give those growths: the ceiling the README
states.

Usage: python benchmarks/bench_chat_memory.py [--unbounded] [--rows 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "randomblob(1e8)": "SELECT randomblob(100000000) AS b",
    "3 x zeroblob(1e8)": "SELECT zeroblob(100000000) AS a, zeroblob(100000000) AS b, zeroblob(100000000) AS c",
    "printf('%.*c', 1e8)": "SELECT printf('%.*c', 100000000, 'x') AS s",
    "group_concat 200 MB": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 200) "
                           "SELECT group_concat(randomblob(1000000)) AS s FROM r",
    "400 rows x 1 MB blob": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 400) "
                            "SELECT n, randomblob(1000000) AS b FROM r",
    "doubling string (allowed fns)": "WITH RECURSIVE d(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM d LIMIT 40) "
                                     "SELECT MAX(length(s)) AS n FROM d",
    "400 rows x 128 KB (allowed fns)": "WITH RECURSIVE d(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM d LIMIT 18), "
                                       "big AS (SELECT s FROM d ORDER BY length(s) DESC LIMIT 1), "
                                       "r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 400) "
                                       "SELECT r.n, big.s FROM r CROSS JOIN big",
}

# Runs in the child: argv = path, rows, json list of SQL. Prints one JSON line: growth (bytes) and outcomes.
CHILD = r"""
import json, os, resource, sqlite3, sys, tempfile
os.environ["TRACKING_ENABLED"] = "false"
from pathlib import Path
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.chatbot.data.source import make_data_source
from ctg_app.settings import Settings
path, rows, sqls = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
settings = Settings(sample_db_path=Path(tempfile.mkdtemp()) / "s.sqlite3", chat_max_rows=rows)
source = make_data_source(settings)
assistant = build_assistant(settings, data_source=source)  # runs chat SQL through its GuardedSource
assistant.run("SELECT * FROM hours")  # warm: the sample built, pandas imported, the policy read
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before, outcomes = peak(), []
for sql in sqls:
    try:
        if path == "unbounded":
            conn = sqlite3.connect(source.path)
            conn.execute(sql).fetchall()
            conn.close()
        elif path == "edit-sql":
            assistant.run(sql)
        else:
            source.run_sql(sql)
        outcomes.append("ran")
    except Exception as exc:  # SqlValidationError (the policy) or one of its subclasses (the engine's bounds)
        outcomes.append(type(exc).__name__ + ": " + str(exc).split(";")[0][:90])
print(json.dumps({"growth": peak() - before, "outcomes": outcomes}))
"""


def measure(path: str, sqls: list[str], rows: int) -> dict:
    """Run ``sqls`` through ``path`` in a fresh process; its peak-RSS growth and the outcomes."""
    done = subprocess.run([sys.executable, "-c", CHILD, path, str(rows), json.dumps(sqls)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    if done.returncode != 0:
        return {"growth": None, "outcomes": [f"crashed (exit {done.returncode})"] * len(sqls)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:8.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unbounded", action="store_true", help="also run each case without any bound (~1.5 GB)")
    parser.add_argument("--rows", type=int, default=10000, help="CHAT_MAX_ROWS (default 10000, the setting's default)")
    args = parser.parse_args()
    paths = ["edit-sql", "engine"] + (["unbounded"] if args.unbounded else [])
    print(f"{'case':34} {'path':10} {'RSS growth':>11}  outcome")
    for name, sql in CASES.items():
        for path in paths:
            result = measure(path, [sql], args.rows)
            print(f"{name:34} {path:10} {mb(result['growth']):>11}  {result['outcomes'][0]}")
    all_cases = list(CASES.values())
    together = {path: measure(path, all_cases, args.rows) for path in ("edit-sql", "engine")}
    for path, result in together.items():
        print(f"ALL CASES IN ONE PROCESS path={path} rss_growth={mb(result['growth']).strip()} "
              f"refused_or_stopped={sum(o != 'ran' for o in result['outcomes'])}/{len(all_cases)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
