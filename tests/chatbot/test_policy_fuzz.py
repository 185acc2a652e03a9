"""Fuzzing the chat SQL policy (hypothesis, derandomized: the same examples on every run, well under a minute).

The input is SQL assembled from fragments - allowed tables, system and foreign tables, CTEs that shadow table names in
nested scopes, allowed and refused functions, writing statements, statement separators, comments, look-alike
characters - and then mutated with arbitrary text. Properties:

1. :func:`validate_chat_sql` never raises anything but its own refusal (``SqlValidationError``), in either dialect;
2. what it accepts is a single read-only query (no writing, schema or session node anywhere) whose every table is an
   allowed table or a CTE of the query itself;
3. accepted SQLite SQL, run on a copy of the real sample database under an authorizer that records every action,
   only reads allowed tables (``SQLITE_READ``/``SQLITE_SELECT``/``SQLITE_FUNCTION``/``SQLITE_RECURSIVE``) and leaves
   the file byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from ctg_app.chatbot.data.source import SampleSQLiteSource
from ctg_app.chatbot.policy import SqlPolicy, validate_chat_sql
from ctg_app.errors import SqlValidationError

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ALLOWED = ["projects", "customers", "departments", "budget_lines", "actual_costs", "cost_to_go", "hours"]
REFUSED = ["sqlite_master", "sqlite_schema", "sqlite_temp_master", "main.sqlite_master", "temp.sqlite_master",
           "_meta", "central_app_usage", "information_schema.tables", "other.projects", "ctg.other.projects",
           "system.access.audit", "pragma_table_info('projects')", "json_each('[1]')", "csv.`/etc/passwd`",
           "samples.nyctaxi.trips", "projects VERSION AS OF 1", "STREAM(projects)"]
SAFE_COLUMNS = ["*", "1", "project_id", "status", "name", "sql", "x", "COUNT(*)", "SUM(amount)", "UPPER(status)",
                "LENGTH(status)", "COALESCE(status, 'x')", "CASE WHEN 1 THEN 'a' ELSE 'b' END", "'O''Brien'",
                "'a' || 'b'", "(SELECT 1 FROM projects)", "ROUND(AVG(hours), 2)", "MAX(posting_date)"]
HOSTILE_COLUMNS = ["randomblob(1000)", "zeroblob(100)", "printf('%.*c', 100, 'x')", "group_concat(status)", "random()",
           "load_extension('x')", "sqlite_version()", "current_user()", "ai_gen('x')", "ai_summarize(status)",
           "readfile('/etc/passwd')", "writefile('/tmp/x', 'y')", "repeat('x', 10)", "lpad('x', 10)",
           "(SELECT name FROM sqlite_master)", "edit('x')", "fts3_tokenizer('x')",
           "nosuchfunc(1)", "hex(x'00')", "version()", "session_user()", "is_member('admins')"]
WRITES = ["DELETE FROM projects", "DROP TABLE projects", "INSERT INTO projects SELECT * FROM projects",
          "UPDATE projects SET status = 'x'", "CREATE TABLE t AS SELECT 1", "ATTACH 'x.db' AS x",
          "PRAGMA writable_schema = 1", "VACUUM INTO '/tmp/x.db'", "REPLACE INTO projects SELECT * FROM projects",
          "ALTER TABLE projects ADD COLUMN x", "DETACH x", "BEGIN", "COMMIT", "SET x = 1", "USE other",
          "EXPLAIN SELECT 1", "SHOW TABLES", "DESCRIBE projects", "MERGE INTO projects USING customers ON 1 = 1 "
          "WHEN MATCHED THEN DELETE", "CREATE TRIGGER t AFTER INSERT ON projects BEGIN DELETE FROM hours; END",
          "REINDEX", "ANALYZE", "COPY INTO projects FROM '/x'", "CACHE TABLE projects", "REFRESH TABLE projects",
          "GRANT SELECT ON projects TO x", "OPTIMIZE projects", "RESTORE TABLE projects TO VERSION AS OF 1"]
NOISE = [";", "; ", "--", "-- x\n", "/*", "*/", "/* x */", "'", '"', "`", "(", ")", ",", "\\", "\x00", "\u0435",
         "\uff33\uff25\uff2c", "\u200b", "$1", "?", ":x", "${x}", "@@x", "\n", " UNION ALL ", " WHERE ", " LIMIT 1"]

# mostly allowed pieces, so that a good share of the queries is accepted and the properties about accepted SQL bite
names = st.one_of(st.sampled_from(ALLOWED), st.sampled_from(ALLOWED), st.sampled_from(ALLOWED), st.sampled_from(REFUSED))
column = st.one_of(st.sampled_from(SAFE_COLUMNS), st.sampled_from(SAFE_COLUMNS), st.sampled_from(SAFE_COLUMNS),
                   st.sampled_from(SAFE_COLUMNS), st.sampled_from(HOSTILE_COLUMNS))
columns = st.lists(column, min_size=1, max_size=3).map(", ".join)


@st.composite
def selects(draw, depth: int = 0) -> str:
    """A SELECT from fragments, possibly with CTEs (named like tables, in nested scopes), subqueries and set ops."""
    table = draw(names)
    source = table
    if depth < 2 and draw(st.booleans()):
        source = f"({draw(selects(depth=depth + 1))}) AS s"
    query = f"SELECT {draw(columns)} FROM {source}"
    if draw(st.booleans()):
        query += f" WHERE {draw(st.sampled_from(['1 = 1', 'status = ' + repr('Active'), 'x IN (SELECT 1)']))}"
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        query += f" UNION ALL {draw(selects(depth=depth + 1))}"
    if depth < 2 and draw(st.booleans()):
        cte = draw(st.sampled_from(ALLOWED + ["sqlite_master", "t", "central_app_usage", "information_schema"]))
        body = draw(st.one_of(selects(depth=depth + 1), selects(depth=depth + 1), st.sampled_from(WRITES)))
        query = f"WITH {cte} AS ({body}) {query}"
    return query


statements = st.one_of(
    selects(),
    selects(),
    selects(),
    st.sampled_from(WRITES),
    st.tuples(selects(), st.sampled_from(NOISE), st.one_of(st.sampled_from(WRITES), selects())).map("".join),
    st.tuples(st.sampled_from(WRITES), st.sampled_from(["; ", " "]), selects()).map("".join),
)


@st.composite
def mutated(draw) -> str:
    """A statement with noise or arbitrary text spliced in at a few places."""
    text = draw(statements)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.one_of(st.sampled_from(NOISE), st.text(max_size=8)))
        text = text[:at] + piece + text[at:]
    return text


@pytest.fixture(scope="module")
def sqlite_policy(sample_db) -> SqlPolicy:
    return SampleSQLiteSource(sample_db).sql_policy()


@pytest.fixture(scope="module")
def databricks_policy() -> SqlPolicy:
    return SqlPolicy("databricks", {t: frozenset() for t in ALLOWED}, ("ctg.project_controlling", "project_controlling"),
                     max_rows=100)


@pytest.fixture(scope="module")
def scratch_db(sample_db, tmp_path_factory):
    """A copy of the sample database, opened read-write, and its digest."""
    path = tmp_path_factory.mktemp("fuzz") / "sample.sqlite3"
    shutil.copy(sample_db, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _validate(sql: str, policy: SqlPolicy) -> str | None:
    try:
        return validate_chat_sql(sql, policy)
    except SqlValidationError:
        return None


# Node types that change data, the schema or the session, checked independently of the policy's own list.
_WRITING = tuple(getattr(exp, name) for name in (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Command", "Set", "Use",
    "Pragma", "Attach", "Detach", "Copy", "Describe", "Show", "Grant", "Into", "Transaction", "Commit", "Rollback",
    "Cache", "Uncache", "Refresh", "LoadData", "Analyze") if isinstance(getattr(exp, name, None), type))


def _assert_single_read_only_query(accepted: str, policy: SqlPolicy) -> None:
    trees = [t for t in sqlglot.parse(accepted, read=policy.dialect) if t is not None]
    assert len(trees) == 1, accepted
    tree = trees[0]
    assert isinstance(tree, exp.Query), accepted
    assert not list(tree.find_all(*_WRITING)), accepted
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        qualifier = ".".join(p for p in (table.catalog, table.db) if p).lower()
        if qualifier:
            assert name in policy.tables and qualifier in policy.qualifiers, (table.sql(), accepted)
        else:
            assert name in policy.tables or name in ctes, (table.sql(), accepted)


@FUZZ
@given(sql=mutated())
def test_the_databricks_policy_refuses_or_accepts_only_single_read_only_queries(databricks_policy, sql):
    accepted = _validate(sql, databricks_policy)
    if accepted is not None:
        _assert_single_read_only_query(accepted, databricks_policy)


# SQLite authorizer actions a read-only query over the data needs; anything else (a write, a pragma, attach, a
# schema change, a transaction) is a failure even though the authorizer lets it through to observe it.
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


@FUZZ
@given(sql=mutated())
def test_accepted_sqlite_sql_only_reads_allowed_tables_and_never_writes(sqlite_policy, scratch_db, sql):
    accepted = _validate(sql, sqlite_policy)
    if accepted is None:
        return
    _assert_single_read_only_query(accepted, sqlite_policy)
    path, digest = scratch_db
    seen: list[tuple[int, str | None]] = []

    def authorize(action, arg1, arg2, db_name, trigger):
        seen.append((action, arg1 if action == sqlite3.SQLITE_READ else arg2))
        return sqlite3.SQLITE_OK

    conn = sqlite3.connect(path)
    try:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000)
        budget = iter(range(5_000))
        conn.set_progress_handler(lambda: next(budget, None) is None, 1000)  # stop after ~5M VM steps
        conn.set_authorizer(authorize)
        try:
            conn.execute(accepted).fetchmany(1000)
        except sqlite3.Error:
            pass  # a runtime error (no such column, interrupted, too big) is fine: the property is about access
    finally:
        conn.close()
    for action, table in seen:
        assert action in _READ_ACTIONS, (action, table, accepted)
        if action == sqlite3.SQLITE_READ:
            assert table is None or table.lower() in sqlite_policy.tables, (table, accepted)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@FUZZ
@given(sql=st.text(max_size=200))
def test_arbitrary_text_is_refused_or_accepted_never_a_crash(sqlite_policy, databricks_policy, sql):
    for policy in (sqlite_policy, databricks_policy):
        accepted = _validate(sql, policy)
        if accepted is not None:
            _assert_single_read_only_query(accepted, policy)
