"""Chat SQL is read-only by construction: bypass attempts against the sample SQLite and the fake warehouse.

Every attempt goes through the user's path (``operations.run_edited_sql``, what *Edit SQL* calls) and, on the
warehouse, through the real databricks-sql-connector over loopback. Before the policy existed, the usage table was
readable, CTE DML deleted and forged rows, a recursive CTE ran forever and a cross join exhausted memory.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ctg_app.ui import operations
from ctg_app.chatbot.data.source import DatabricksSource, SampleSQLiteSource, make_data_source
from ctg_app.chatbot.data.sample import sample_tables
from ctg_app.chatbot.policy import SqlPolicy, validate_chat_sql
from ctg_app.chatbot.data.training import load_training
from ctg_app.chatbot.assistant import build_assistant
from fake_databricks import FakeWarehouse
from tests.chatbot.conftest import sample_and_usage_warehouse
from ctg_app.settings import Settings, SettingsError
from ctg_app.errors import SqlValidationError

CENTRAL = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"
SCHEMA = "ctg.project_controlling"

# (case id, SQL, words the refusal must contain)
REFUSED = [
    ("usage-table", f"SELECT user, action, timestamp FROM {CENTRAL}", "usage-tracking table"),
    ("usage-table-backticks", "SELECT * FROM `elevio_group___rag_pilot`.`rag_core_blocks`.`central_app_usage`",
     "usage-tracking table"),
    ("usage-table-upper-case", f"SELECT * FROM {CENTRAL.upper()}", "usage-tracking table"),
    ("usage-table-in-subquery", f"SELECT project_id FROM projects WHERE project_id IN (SELECT 1 FROM {CENTRAL})",
     "usage-tracking table"),
    ("usage-table-in-union", f"SELECT project_code FROM projects UNION ALL SELECT user FROM {CENTRAL}",
     "usage-tracking table"),
    ("usage-table-in-cte", f"WITH u AS (SELECT * FROM {CENTRAL}) SELECT COUNT(*) FROM u", "usage-tracking table"),
    ("usage-table-identifier-clause", f"SELECT * FROM IDENTIFIER('{CENTRAL}')", "table functions"),
    ("usage-table-in-lateral", f"SELECT * FROM projects, LATERAL (SELECT * FROM {CENTRAL})", "usage-tracking table"),
    ("usage-table-scalar-subquery", f"SELECT (SELECT COUNT(*) FROM {CENTRAL}) AS n", "usage-tracking table"),
    ("system-table-in-exists", "SELECT 1 FROM projects WHERE EXISTS (SELECT 1 FROM system.access.audit)",
     "not a table of the CTG data"),
    ("cte-delete-usage-table", f"WITH d AS (DELETE FROM {CENTRAL} RETURNING 1) SELECT COUNT(*) FROM d", "DELETE"),
    ("cte-delete-projects", "WITH d AS (DELETE FROM projects RETURNING 1) SELECT COUNT(*) FROM d", "DELETE"),
    ("cte-insert-usage-table",
     f"WITH i AS (INSERT INTO {CENTRAL} (timestamp, app_name, user, action) VALUES (now(), 'x', 'forged@x', "
     "'app_start') RETURNING 1) SELECT COUNT(*) FROM i", "INSERT"),
    ("cte-update", "WITH u AS (UPDATE projects SET status = 'x' RETURNING 1) SELECT COUNT(*) FROM u", "UPDATE"),
    ("second-cte-delete", "WITH a AS (SELECT 1 AS x), d AS (DELETE FROM projects RETURNING 1) SELECT * FROM a",
     "DELETE"),
    ("nested-cte-delete",
     "WITH b AS (SELECT * FROM (WITH d AS (DELETE FROM projects RETURNING 1) SELECT * FROM d)) SELECT * FROM b",
     "DELETE"),
    ("delete-in-union", "SELECT 1 UNION ALL SELECT * FROM (WITH d AS (DELETE FROM projects RETURNING 1) "
     "SELECT * FROM d)", "DELETE"),
    ("select-into", "SELECT * INTO stolen FROM projects", "INTO"),
    ("plain-delete", "DELETE FROM projects", "DELETE"),
    ("lower-case-delete", "delete from projects", "DELETE"),
    ("drop", "DROP TABLE projects", "DROP"),
    ("second-statement", "SELECT 1; DROP TABLE projects", "one SQL statement"),
    ("comment-hides-statement", "SELECT 1 /* harmless */; DELETE FROM projects -- tail", "one SQL statement"),
    ("line-comment-then-statement", "SELECT 1 --\n; DELETE FROM projects", "one SQL statement"),
    ("fullwidth-select", "ＳＥＬＥＣＴ * FROM projects", "non-ASCII"),
    ("cyrillic-e-in-table", "SELECT * FROM proj\u0435cts", "non-ASCII"),
    ("cyrillic-e-in-delete", "WITH d AS (D\u0415LETE FROM projects RETURNING 1) SELECT * FROM d", "non-ASCII"),
    ("explain", "EXPLAIN SELECT * FROM projects", "EXPLAIN"),
    ("show-tables", "SHOW TABLES", "SHOW"),
    ("describe", "DESCRIBE projects", "DESCRIBE"),
    ("set", "SET x = 1", "SET"),
    ("use", "USE elevio_group___rag_pilot.rag_core_blocks", "USE"),
    ("pragma", "PRAGMA table_info(projects)", "PRAGMA"),
    ("attach", "ATTACH DATABASE '/tmp/ctg-attach.db' AS x", "ATTACH|cannot be parsed"),
    ("read-csv", "SELECT * FROM read_csv('/etc/passwd')", "READ_CSV"),
    ("read-files", "SELECT * FROM read_files('/etc')", "READ_FILES"),
    ("table-function", "SELECT * FROM range(10)", "table functions"),
    ("path-table", "SELECT * FROM csv.`/etc/passwd`", "not a table of the CTG data"),
    ("reflect", "SELECT reflect('java.lang.System', 'getenv')", "REFLECT"),
    ("sqlite-master", "SELECT name, sql FROM sqlite_master", "not a table of the CTG data"),
    ("internal-table", "SELECT * FROM _meta", "not a table of the CTG data"),
    ("information-schema", "SELECT * FROM information_schema.tables", "not a table of the CTG data"),
    ("other-catalog", "SELECT * FROM other_catalog.other_schema.projects", "not a table of the CTG data"),
    ("empty", "   ", "empty"),
    ("prose", "I cannot answer that", "cannot be parsed|only a read-only query"),
]

ALLOWED = [
    ("mixed-case", "sElEcT COUNT(*) AS n FrOm projects", 1),
    ("cte", "WITH p AS (SELECT project_id FROM projects) SELECT COUNT(*) AS n FROM p", 1),
    ("quoted-identifiers", "SELECT {q}status{q}, COUNT(*) AS n FROM {q}projects{q} GROUP BY {q}status{q}", 4),
    ("union", "SELECT department_name AS name FROM departments UNION ALL SELECT department_name FROM departments", 16),
    ("string-literal-unicode", "SELECT COUNT(*) AS n FROM customers WHERE customer_name <> 'Müller – Straße'", 1),
    ("comment", "-- the count\nSELECT COUNT(*) AS n FROM projects /* done */", 1),
    ("trailing-semicolon", "SELECT COUNT(*) AS n FROM projects;", 1),
]


# ----- the two sources ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_vn(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("policy") / "ctg-sample.sqlite3"
    vn = build_assistant(Settings(sample_db_path=db, chat_query_timeout_s=1.0, chat_max_rows=500))
    vn.cache_key = "sqlite-policy"
    return vn


@pytest.fixture(scope="module")
def warehouse() -> Iterator[FakeWarehouse]:
    """One fake warehouse for the module: the sample tables in ctg.project_controlling and the usage table."""
    yield from sample_and_usage_warehouse()


def _warehouse_settings(wh: FakeWarehouse, **changes) -> Settings:
    env = {**wh.env(), "CTG_DATA_SOURCE": "databricks", "CTG_DATA_SCHEMA": SCHEMA, "WAREHOUSE_TIMEOUT_S": "5",
           "CHAT_QUERY_TIMEOUT_S": "2", "CHAT_MAX_ROWS": "500"}
    return Settings.from_sources(env).replace(**changes)


@pytest.fixture(scope="module")
def warehouse_vn(warehouse: FakeWarehouse):
    vn = build_assistant(_warehouse_settings(warehouse))
    vn.cache_key = "warehouse-policy"
    return vn


def _sqlite_state(vn) -> tuple:
    return tuple(vn.data_source._connect().execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                 for t in ("projects", "customers", "hours"))


def _warehouse_state(wh: FakeWarehouse) -> tuple:
    return (wh.query(f"SELECT COUNT(*) FROM {SCHEMA}.projects")[0][0],
            wh.query(f"SELECT COUNT(*) FROM {CENTRAL}")[0][0],
            wh.query(f"SELECT COUNT(*) FROM {CENTRAL} WHERE user = 'forged@x'")[0][0])


# ----- bypass attempts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sql", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bypass_refused_on_the_sample_sqlite(sqlite_vn, chatbot_env, sql, reason):
    before = _sqlite_state(sqlite_vn)
    with pytest.raises(SqlValidationError, match=reason):
        operations.run_edited_sql(sqlite_vn, sql)
    assert _sqlite_state(sqlite_vn) == before
    assert [r["action"] for r in chatbot_env.rows()] == ["sql_error"]  # recorded as the refusal it is


@pytest.mark.parametrize(("sql", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bypass_refused_on_the_fake_warehouse(warehouse, warehouse_vn, chatbot_env, sql, reason):
    before = _warehouse_state(warehouse)
    warehouse.reset_stats()
    with pytest.raises(SqlValidationError, match=reason):
        operations.run_edited_sql(warehouse_vn, sql)
    assert warehouse.statements == []  # refused before anything reached the warehouse
    assert _warehouse_state(warehouse) == before
    assert [r["action"] for r in chatbot_env.rows()] == ["sql_error"]


def test_issue_cases_usage_table_unreadable_and_cte_delete_deletes_nothing(warehouse, warehouse_vn, chatbot_env):
    # the issue's exact cases, with proof that the warehouse itself would have run them
    rows_before = warehouse.query(f"SELECT COUNT(*) FROM {CENTRAL}")[0][0]
    assert rows_before >= 1
    with pytest.raises(SqlValidationError, match="usage-tracking table"):
        operations.run_edited_sql(warehouse_vn, f"SELECT user, action, timestamp FROM {CENTRAL}")
    with pytest.raises(SqlValidationError, match="DELETE"):
        operations.run_edited_sql(warehouse_vn, f"WITH d AS (DELETE FROM {CENTRAL} RETURNING 1) SELECT COUNT(*) FROM d")
    assert warehouse.query(f"SELECT COUNT(*) FROM {CENTRAL}")[0][0] == rows_before
    # the generated-SQL path refuses it too (sql_query → sql_error), whatever produced the SQL
    warehouse_vn.answerer.answer = lambda q, previous=None: operations.SqlAnswer(question=q, sql=f"SELECT * FROM {CENTRAL}")
    try:
        with pytest.raises(SqlValidationError, match="usage-tracking table"):
            operations.generate_sql(warehouse_vn, "who used the app?")
    finally:
        del warehouse_vn.answerer.answer
    assert [r["action"] for r in chatbot_env.rows()] == ["sql_error", "sql_error", "sql_error"]


@pytest.mark.parametrize(("sql", "rows"), [c[1:] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_read_only_queries_still_run_on_both_sources(sqlite_vn, warehouse_vn, chatbot_env, sql, rows):
    for vn, quote in ((sqlite_vn, '"'), (warehouse_vn, "`")):
        operations.clear_caches()
        df = operations.run_edited_sql(vn, sql.replace("{q}", quote))
        assert len(df) == rows and df.attrs["capped"] is False


def test_qualified_names_of_the_data_schema_are_allowed_on_the_warehouse(warehouse_vn, chatbot_env):
    for sql in (f"SELECT COUNT(*) AS n FROM {SCHEMA}.projects", "SELECT COUNT(*) AS n FROM project_controlling.projects",
                "SELECT COUNT(*) AS n FROM `ctg`.`project_controlling`.`projects`"):
        assert operations.run_edited_sql(warehouse_vn, sql)["n"][0] == 120


def test_every_trained_query_passes_the_policy_and_gives_the_same_result(sqlite_vn):
    policy = sqlite_vn.data_source.sql_policy().with_columns_checked()
    conn = sqlite_vn.data_source._connect()
    for example in load_training(dialect="sqlite").examples:
        checked = validate_chat_sql(example.sql, policy)
        expected = pd.read_sql(example.sql, conn)
        pd.testing.assert_frame_equal(pd.read_sql(checked, conn), expected, check_dtype=False, obj=example.question)


def test_every_trained_query_gives_the_same_result_through_the_policy_on_the_warehouse(warehouse_vn):
    source = warehouse_vn.data_source
    for example in load_training(dialect="databricks").examples:
        expected = _sorted(source.run_sql(example.sql))  # the raw source, no policy
        pd.testing.assert_frame_equal(_sorted(warehouse_vn.run(example.sql)), expected, check_dtype=False,
                                      obj=example.question)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order (DuckDB breaks ties of an ORDER BY differently from run to run)."""
    return df.astype(str).sort_values(list(df.columns)).reset_index(drop=True)


# ----- time limit and row cap --------------------------------------------------------------------------------------

RUNAWAY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) AS n FROM r"
CROSS_JOIN = "SELECT * FROM hours a CROSS JOIN hours b CROSS JOIN hours c"


def test_runaway_recursive_cte_stops_within_the_timeout_on_sqlite(sqlite_vn, chatbot_env):
    started = time.monotonic()
    with pytest.raises(Exception, match="CHAT_QUERY_TIMEOUT_S=1 s") as info:
        operations.run_edited_sql(sqlite_vn, RUNAWAY)
    assert time.monotonic() - started < 5
    assert isinstance(info.value, sqlite3.OperationalError)  # a database error (QueryTimeout is one), not ours
    assert [r["action"] for r in chatbot_env.rows()] == ["database_error"]


def test_runaway_recursive_cte_stops_within_the_timeout_on_the_warehouse(warehouse, warehouse_vn, chatbot_env):
    started = time.monotonic()
    with pytest.raises(Exception, match="QUERY_EXECUTION_TIMEOUT_EXCEEDED"):
        operations.run_edited_sql(warehouse_vn, RUNAWAY)
    assert time.monotonic() - started < 8
    assert operations.run_edited_sql(warehouse_vn, "SELECT COUNT(*) AS n FROM projects")["n"][0] == 120  # session ok


@pytest.mark.parametrize("source", ["sqlite", "warehouse"])
def test_cross_join_is_capped_and_says_so(request, chatbot_env, source):
    vn = request.getfixturevalue(f"{source}_vn")
    df = operations.run_edited_sql(vn, CROSS_JOIN)  # billions of rows uncapped
    assert len(df) == 500 and df.attrs == {"capped": True, "row_cap": 500}
    again = operations.run_edited_sql(vn, CROSS_JOIN)  # from Streamlit's cache: the flag survives pickling
    assert again.attrs["capped"] is True
    exact = operations.run_edited_sql(vn, "SELECT * FROM hours LIMIT 500")
    assert len(exact) == 500 and exact.attrs["capped"] is False


def test_row_cap_is_applied_in_the_sql_sent_to_the_warehouse(warehouse, warehouse_vn, chatbot_env):
    warehouse.reset_stats()
    operations.run_edited_sql(warehouse_vn, "SELECT * FROM hours LIMIT 100000")
    assert warehouse.statements and warehouse.statements[-1].rstrip().endswith("LIMIT 501")
    warehouse.reset_stats()
    operations.run_edited_sql(warehouse_vn, "SELECT * FROM hours LIMIT 3")
    assert warehouse.statements[-1].rstrip().endswith("LIMIT 3")


def test_chat_limits_are_settings_and_validated():
    settings = Settings.from_sources({"CHAT_QUERY_TIMEOUT_S": "7.5", "CHAT_MAX_ROWS": "42"})
    assert (settings.chat_query_timeout_s, settings.chat_max_rows) == (7.5, 42)
    source = make_data_source(settings)
    assert isinstance(source, SampleSQLiteSource) and (source.timeout_s, source.max_rows) == (7.5, 42)
    for bad in ({"CHAT_MAX_ROWS": "0"}, {"CHAT_QUERY_TIMEOUT_S": "0"}, {"CHAT_QUERY_TIMEOUT_S": "-1"}):
        with pytest.raises(SettingsError):
            Settings.from_sources(bad)


# ----- schema check (used by the LLM path) -------------------------------------------------------------------------


def test_unknown_columns_and_tables_are_named(sqlite_vn):
    with pytest.raises(SqlValidationError, match="unknown column 'project_nme'"):
        sqlite_vn.source.validate("SELECT project_nme FROM projects", check_columns=True)
    with pytest.raises(SqlValidationError, match="unknown column 'budget'"):
        sqlite_vn.source.validate("SELECT p.project_code, b.budget FROM projects p JOIN budget_lines b "
                                      "ON b.project_id = p.project_id", check_columns=True)
    with pytest.raises(SqlValidationError, match="'invoices'"):
        sqlite_vn.source.validate("SELECT * FROM invoices", check_columns=True)
    ok = "SELECT p.project_code AS c, SUM(h.hours) AS n FROM projects p JOIN hours h ON h.project_id = p.project_id " \
         "GROUP BY c ORDER BY n DESC"
    assert "LIMIT 501" in sqlite_vn.source.validate(ok, check_columns=True)


def test_policy_allow_list_is_the_sources_own_tables(sqlite_vn, warehouse_vn):
    sqlite_policy: SqlPolicy = sqlite_vn.data_source.sql_policy()
    assert set(sqlite_policy.tables) == set(sample_tables())
    assert "project_code" in sqlite_policy.tables["projects"]
    wh_policy = warehouse_vn.data_source.sql_policy()
    assert set(wh_policy.tables) == set(sample_tables()) and SCHEMA in wh_policy.qualifiers
    assert CENTRAL in wh_policy.refused_names


# ----- a separate read-only principal for chat queries -------------------------------------------------------------


def test_chat_queries_use_the_read_only_credentials_when_set(warehouse):
    # the flusher's token is not accepted by this warehouse; the chat's own read-only token is
    settings = _warehouse_settings(warehouse, databricks_access_token="flusher-token",
                                   data_access_token=warehouse.token)
    source = make_data_source(settings)
    assert isinstance(source, DatabricksSource)
    assert source.run_sql("SELECT COUNT(*) AS n FROM projects")["n"][0] == 120
    assert warehouse.token in settings.secret_values()  # redacted wherever it could echo

    flusher_only = make_data_source(_warehouse_settings(warehouse, databricks_access_token="flusher-token"))
    with pytest.raises(Exception, match="401|Unauthorized|rejected|token"):  # noqa: B017 - the connector's error
        flusher_only.run_sql("SELECT 1")


def test_read_only_service_principal_replaces_the_flushers(warehouse):
    source = DatabricksSource(_warehouse_settings(warehouse, data_client_id="chat-sp", data_client_secret="s3cret"))
    data = source.data_settings()
    assert (data.databricks_client_id, data.databricks_client_secret, data.databricks_access_token) == \
        ("chat-sp", "s3cret", None)
    plain = DatabricksSource(_warehouse_settings(warehouse))
    assert dataclasses.asdict(plain.data_settings()) == dataclasses.asdict(plain.settings)


def test_sample_source_is_bounded_without_the_app(tmp_path: Path):
    source = make_data_source(Settings(sample_db_path=tmp_path / "s.sqlite3", chat_query_timeout_s=0.5,
                                       chat_max_rows=3))
    df = source.run_sql("SELECT * FROM projects")
    assert len(df) == 3 and df.attrs == {"capped": True, "row_cap": 3}
    started = time.monotonic()
    with pytest.raises(Exception, match="CHAT_QUERY_TIMEOUT_S=0.5 s"):
        source.run_sql(RUNAWAY)
    assert time.monotonic() - started < 3
