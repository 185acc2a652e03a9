"""Chat SQL is bounded in memory, cost and scope (issue 18): each symptom of the adversarial run, on both sources.

Memory bombs passed the row cap and the time limit (one function call is one engine step); a CTE name shadowed a
table in another scope; the Databricks policy let AI, identity, time-travel and STREAM through. Every case goes
through the user's path (``operations.run_edited_sql``) on the sample SQLite and, over the real connector, on the
fake warehouse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctg_app.ui import operations
from ctg_app.chatbot.data.source import (MAX_RESULT_COLUMNS, ResultTooLarge, SampleSQLiteSource, make_data_source,
                                         qualify_tables)
from ctg_app.chatbot.data.sample import sample_tables
from ctg_app.chatbot.policy import SqlPolicy, validate_chat_sql
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.settings import Settings, SettingsError
from ctg_app.errors import SqlValidationError
from fake_databricks import FakeWarehouse
from tests.chatbot.conftest import sample_and_usage_warehouse

CENTRAL = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"
SCHEMA = "ctg.project_controlling"
ROOT = Path(__file__).resolve().parents[2]

# The memory bombs, as the engine would run them (the policy refuses most of them before; see below).
SQLITE_BOMBS = {
    "randomblob-1e8": "SELECT randomblob(100000000) AS b",
    "three-zeroblobs-1e8": "SELECT zeroblob(100000000) AS a, zeroblob(100000000) AS b, zeroblob(100000000) AS c",
    "printf-1e8": "SELECT printf('%.*c', 100000000, 'x') AS s",
    "group-concat-200mb": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 200) "
                          "SELECT group_concat(randomblob(1000000)) AS s FROM r",
    "400-rows-of-1mb": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 400) "
                       "SELECT n, randomblob(1000000) AS b FROM r",
}
# The same through functions the SQLite policy allows: doubling a string, and 400 rows of a 128 KB value.
DOUBLING = ("WITH RECURSIVE d(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM d LIMIT 40) "
            "SELECT MAX(length(s)) AS n FROM d")
ROWS_OF_128KB = ("WITH RECURSIVE d(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM d LIMIT 18), "
                 "big AS (SELECT s FROM d ORDER BY length(s) DESC LIMIT 1), "
                 "r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 400) "
                 "SELECT r.n, big.s FROM r CROSS JOIN big")


@pytest.fixture(scope="module")
def sqlite_vn(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("bounds") / "ctg-sample.sqlite3"
    vn = build_assistant(Settings(sample_db_path=db, chat_query_timeout_s=5.0, chat_max_rows=500))
    vn.cache_key = "sqlite-bounds"
    return vn


@pytest.fixture(scope="module")
def warehouse() -> Iterator[FakeWarehouse]:
    yield from sample_and_usage_warehouse()


def _warehouse_settings(wh: FakeWarehouse, **env: str) -> Settings:
    return Settings.from_sources({**wh.env(), "CTG_DATA_SOURCE": "databricks", "CTG_DATA_SCHEMA": SCHEMA,
                                  "WAREHOUSE_TIMEOUT_S": "5", "CHAT_QUERY_TIMEOUT_S": "5", "CHAT_MAX_ROWS": "500",
                                  **env})


@pytest.fixture(scope="module")
def warehouse_vn(warehouse: FakeWarehouse):
    vn = build_assistant(_warehouse_settings(warehouse))
    vn.cache_key = "warehouse-bounds"
    return vn


# ----- memory ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", SQLITE_BOMBS.values(), ids=SQLITE_BOMBS.keys())
def test_sqlite_engine_stops_each_memory_bomb_even_without_the_policy(tmp_path, sql):
    source = make_data_source(Settings(sample_db_path=tmp_path / "s.sqlite3"))  # run_sql: no policy in front
    if "printf" in sql:  # SQLite's printf gives NULL rather than a string over SQLITE_LIMIT_LENGTH: nothing is built
        assert source.run_sql(sql)["s"].tolist() == [None]
        return
    with pytest.raises(ResultTooLarge, match="CHAT_MAX_(VALUE|RESULT)_BYTES="):
        source.run_sql(sql)


@pytest.mark.parametrize("sql", SQLITE_BOMBS.values(), ids=SQLITE_BOMBS.keys())
def test_memory_bombs_are_refused_on_the_edit_sql_path(sqlite_vn, chatbot_env, sql):
    with pytest.raises(SqlValidationError, match="RANDOMBLOB|ZEROBLOB|PRINTF|CHAT_MAX"):
        operations.run_edited_sql(sqlite_vn, sql)
    assert [r["action"] for r in chatbot_env.rows()] == ["sql_error"]


def test_a_value_doubled_with_allowed_functions_stops_at_the_value_limit(sqlite_vn, chatbot_env):
    with pytest.raises(ResultTooLarge, match="CHAT_MAX_VALUE_BYTES=262144 \\(256 KiB\\)"):
        operations.run_edited_sql(sqlite_vn, DOUBLING)


def test_many_rows_of_big_values_stop_at_the_result_budget_with_a_clear_message(sqlite_vn, chatbot_env):
    # 400 rows (inside the 500-row cap) of a 128 KB value: 51 MB, over the 32 MiB budget
    with pytest.raises(ResultTooLarge, match=r"larger than CHAT_MAX_RESULT_BYTES=33554432 \(32.0 MiB\) after \d+ rows"):
        operations.run_edited_sql(sqlite_vn, ROWS_OF_128KB)
    assert [r["action"] for r in chatbot_env.rows()] == ["sql_error"]


def test_too_many_columns_are_refused(tmp_path):
    source = make_data_source(Settings(sample_db_path=tmp_path / "s.sqlite3"))
    wide = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(MAX_RESULT_COLUMNS + 1))
    with pytest.raises(ResultTooLarge, match=f"more than {MAX_RESULT_COLUMNS} columns"):
        source.run_sql(wide)
    assert len(source.run_sql("SELECT " + ", ".join(f"{i} AS c{i}" for i in range(MAX_RESULT_COLUMNS))).columns) == \
        MAX_RESULT_COLUMNS


def test_byte_bounds_are_settings_with_defaults_and_validated():
    defaults = Settings.from_sources({})
    assert (defaults.chat_max_value_bytes, defaults.chat_max_result_bytes) == (262_144, 33_554_432)
    custom = Settings.from_sources({"CHAT_MAX_VALUE_BYTES": "4096", "CHAT_MAX_RESULT_BYTES": "100000"})
    source = make_data_source(custom)
    assert isinstance(source, SampleSQLiteSource)
    assert (source.max_value_bytes, source.max_result_bytes) == (4096, 100_000)
    for bad in ({"CHAT_MAX_VALUE_BYTES": "10"}, {"CHAT_MAX_VALUE_BYTES": "4096", "CHAT_MAX_RESULT_BYTES": "100"},
                {"CHAT_MAX_RESULT_BYTES": "lots"}):
        with pytest.raises(SettingsError, match="CHAT_MAX_"):
            Settings.from_sources(bad)


def test_ordinary_results_fit_the_budget(sqlite_vn, chatbot_env):
    df = operations.run_edited_sql(sqlite_vn, "SELECT * FROM hours")
    assert len(df) == 500 and df.attrs["capped"] is True  # the row cap, not the byte budget, cut it


MEASURE = r"""
import json, os, resource, sys, tempfile
os.environ["TRACKING_ENABLED"] = "false"
from pathlib import Path
from ctg_app.ui import operations
from ctg_app.chatbot.assistant import build_assistant
from ctg_app.settings import Settings
vn = build_assistant(Settings(sample_db_path=Path(tempfile.mkdtemp()) / "s.sqlite3", chat_max_rows=10000))
source = vn.data_source
source.run_sql("SELECT * FROM hours")  # warm: the sample built, pandas imported
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before, outcomes = peak(), []
for sql in json.loads(sys.argv[1]):
    try:
        source.run_sql(sql)
        outcomes.append("ran")
    except Exception as exc:
        outcomes.append(type(exc).__name__)
print(json.dumps({"growth": peak() - before, "outcomes": outcomes}))
"""

#: The stated ceiling (README): running every bomb grows the process's peak RSS by less than this.
RSS_CEILING_BYTES = 150 * 1024 * 1024


def test_the_process_stays_under_the_stated_ceiling_while_every_bomb_runs():
    bombs = [*SQLITE_BOMBS.values(), DOUBLING, ROWS_OF_128KB]
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(bombs)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcomes"] == [("ran" if "printf" in sql else "ResultTooLarge") for sql in bombs]
    assert result["growth"] < RSS_CEILING_BYTES, result  # the landed code grew by 738 MB on the first bomb alone


# ----- the policy: allow-listed functions, no time travel, no STREAM -----------------------------------------------

WAREHOUSE_REFUSED = [
    ("ai-gen", "SELECT ai_gen('summarise ' || project_name) AS s FROM projects", "AI_GEN.*billed AI model"),
    ("ai-summarize", "SELECT ai_summarize(project_name) AS s FROM projects", "AI_SUMMARIZE.*billed AI model"),
    ("ai-query", "SELECT ai_query('m', project_name) AS s FROM projects", "AI_QUERY.*billed AI model"),
    ("current-user", "SELECT current_user() AS u", "CURRENT_USER.*identity"),
    ("session-user", "SELECT session_user() AS u", "SESSION_USER.*identity"),
    ("is-member", "SELECT is_member('admins') AS m", "IS_MEMBER.*identity"),
    ("version-as-of", "SELECT * FROM projects VERSION AS OF 1", "time travel"),
    ("timestamp-as-of", "SELECT * FROM projects TIMESTAMP AS OF '2024-01-01'", "time travel"),
    ("stream", "SELECT * FROM STREAM(projects)", "STREAM"),
    ("repeat", "SELECT repeat('x', 100000000) AS s", "REPEAT"),
    ("lpad", "SELECT lpad('x', 100000000, 'y') AS s", "LPAD|PAD"),
    ("space", "SELECT space(100000000) AS s", "SPACE"),
    ("sequence", "SELECT explode(sequence(1, 100000000)) AS n", "EXPLODE|SEQUENCE|GENERATE"),
    ("array-repeat", "SELECT array_repeat(project_name, 100000) AS a FROM projects", "ARRAY_REPEAT"),
    ("collect-list", "SELECT collect_list(project_name) AS a FROM projects", "COLLECT_LIST|ARRAY_AGG"),
    ("concat-chain", "WITH a0 AS (SELECT concat(project_name, project_name) AS s FROM projects), " +
     "".join(f"a{i} AS (SELECT concat(s, s, s) AS s FROM a{i - 1}), " for i in range(1, 8)) +
     "a8 AS (SELECT s FROM a7) SELECT length(s) AS n FROM a8", "joins 23 strings"),
    ("unknown-function", "SELECT reflect('java.lang.Runtime', 'getRuntime') AS r", "REFLECT"),
    ("session-variable", "SELECT ${hivevar:x} AS v", "parameters|cannot be parsed|not allowed"),
]


@pytest.mark.parametrize(("sql", "reason"), [c[1:] for c in WAREHOUSE_REFUSED], ids=[c[0] for c in WAREHOUSE_REFUSED])
def test_cost_identity_time_travel_and_big_values_refused_on_the_warehouse(warehouse, warehouse_vn, chatbot_env, sql,
                                                                           reason):
    warehouse.reset_stats()
    with pytest.raises(SqlValidationError, match=reason):
        operations.run_edited_sql(warehouse_vn, sql)
    assert warehouse.statements == []  # refused before anything reached the warehouse
    assert [r["action"] for r in chatbot_env.rows()] == ["sql_error"]


def test_the_warehouse_result_stops_at_the_byte_budget(warehouse, chatbot_env):
    vn = build_assistant(_warehouse_settings(warehouse, CHAT_MAX_VALUE_BYTES="4096", CHAT_MAX_RESULT_BYTES="20000"))
    vn.cache_key = "warehouse-small-budget"
    with pytest.raises(ResultTooLarge, match=r"CHAT_MAX_RESULT_BYTES=20000 \(20 KiB\) after \d+ rows"):
        operations.run_edited_sql(vn, "SELECT * FROM hours")  # 500 rows of ~60 bytes = 30 KB
    assert len(operations.run_edited_sql(vn, "SELECT * FROM hours LIMIT 50")) == 50  # small results still run


def test_analytics_functions_stay_allowed_on_both_dialects():
    tables = {t: frozenset(c for c in df.columns) for t, df in sample_tables().items()}
    sqls = [
        "SELECT status, COUNT(*) AS n, SUM(budget) AS b, AVG(budget) AS a, MIN(start_date) AS s, MAX(end_date) AS e "
        "FROM projects GROUP BY status",
        "SELECT project_code, ROUND(ABS(budget) / 1000, 1) AS k, COALESCE(NULLIF(status, ''), 'none') AS s, "
        "CASE WHEN budget > 100000 THEN 'big' ELSE 'small' END AS size, UPPER(TRIM(project_name)) AS name, "
        "LOWER(SUBSTR(project_name, 1, 3)) AS p, LENGTH(project_name) AS l FROM projects",
        "SELECT project_id, ROW_NUMBER() OVER (ORDER BY budget DESC) AS r, RANK() OVER (ORDER BY budget) AS k, "
        "LAG(budget) OVER (ORDER BY project_id) AS prev, SUM(budget) OVER (PARTITION BY status) AS t FROM projects",
        "SELECT YEAR(entry_date) AS y, MONTH(entry_date) AS m, QUARTER(entry_date) AS q, SUM(hours) AS h "
        "FROM hours GROUP BY 1, 2, 3",
        "SELECT CAST(budget AS INTEGER) AS b, project_code || '-' || status AS label FROM projects",
    ]
    for dialect in ("sqlite", "databricks"):
        policy = SqlPolicy(dialect, tables)
        for sql in sqls:
            validate_chat_sql(sql, policy)  # raises if refused


# ----- scope: a CTE name means the CTE only where it is visible ------------------------------------------------------

SHADOW = ("SELECT (SELECT 1 FROM (WITH sqlite_master AS (SELECT 1 AS x) SELECT x FROM sqlite_master)) a, name, sql "
          "FROM sqlite_master")
SHADOW_WAREHOUSE = (f"SELECT (SELECT 1 FROM (WITH central_app_usage AS (SELECT 1 AS x) SELECT x FROM "
                    f"central_app_usage)) a, user, action FROM central_app_usage")
SHADOWS = [
    ("issue-case", SHADOW),
    ("cte-in-a-later-sibling", "WITH a AS (SELECT * FROM sqlite_master), sqlite_master AS (SELECT 1 AS x) "
                               "SELECT * FROM a"),
    ("cte-in-a-union-branch", "SELECT name FROM sqlite_master UNION ALL SELECT * FROM "
                              "(WITH sqlite_master AS (SELECT 1 AS x) SELECT x FROM sqlite_master)"),
    ("cte-in-a-scalar-subquery", "SELECT (WITH sqlite_master AS (SELECT 1 AS x) SELECT x FROM sqlite_master) AS a, "
                                 "(SELECT sql FROM sqlite_master LIMIT 1) AS b"),
]


@pytest.mark.parametrize("sql", [c[1] for c in SHADOWS], ids=[c[0] for c in SHADOWS])
def test_a_cte_name_does_not_shadow_a_table_outside_its_scope_on_sqlite(sqlite_vn, chatbot_env, sql):
    with pytest.raises(SqlValidationError, match="'sqlite_master', which is not a table of the CTG data"):
        operations.run_edited_sql(sqlite_vn, sql)


def test_a_cte_name_does_not_shadow_the_usage_table_on_the_warehouse(warehouse, warehouse_vn, chatbot_env):
    warehouse.reset_stats()
    with pytest.raises(SqlValidationError, match="usage-tracking table"):
        operations.run_edited_sql(warehouse_vn, SHADOW_WAREHOUSE)
    assert warehouse.statements == []


def test_ctes_in_scope_still_work(sqlite_vn, warehouse_vn, chatbot_env):
    sqls = {
        "WITH p AS (SELECT project_id FROM projects), q AS (SELECT * FROM p) SELECT COUNT(*) AS n FROM q": 120,
        "SELECT (SELECT COUNT(*) FROM (WITH p AS (SELECT 1 AS x FROM projects) SELECT x FROM p)) AS n": 120,
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT COUNT(*) AS n FROM r": 5,
        "WITH p AS (SELECT project_id FROM projects) SELECT COUNT(*) AS n FROM p UNION ALL SELECT COUNT(*) FROM p": 120,
    }
    for vn in (sqlite_vn, warehouse_vn):
        for sql, n in sqls.items():
            operations.clear_caches()
            assert operations.run_edited_sql(vn, sql)["n"][0] == n, (vn.cache_key, sql)


def test_qualify_tables_qualifies_a_name_outside_the_ctes_scope():
    out = qualify_tables("SELECT (SELECT 1 FROM (WITH t AS (SELECT 1 AS x) SELECT x FROM t)) a, y FROM t",
                         "ctg", "project_controlling")
    assert out.endswith("FROM ctg.project_controlling.t")  # the outer t is the table, not the inner CTE
    assert "SELECT x FROM t)" in out  # the inner t is the CTE
    later = qualify_tables("WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a", "c", "s")
    assert "WITH a AS (SELECT * FROM c.s.b), b AS" in later  # a later sibling CTE is not visible
