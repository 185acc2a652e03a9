"""Where the CTG data lives: the local sample SQLite database (default) or a Databricks SQL warehouse.

A :class:`DataSource` runs read-only SQL and returns a DataFrame; ``dialect`` is the sqlglot dialect its SQL is written
in and ``display_dialect`` the name Vanna puts into LLM prompts. :func:`make_data_source` picks one from the settings.

Both sources bound every query: it stops after ``CHAT_QUERY_TIMEOUT_S`` (SQLite: a progress handler; Databricks: the
warehouse's ``STATEMENT_TIMEOUT`` session parameter) and returns at most ``CHAT_MAX_ROWS`` rows, fetched with
``fetchmany(cap + 1)`` so a cut result is known: the frame then carries ``attrs["capped"] = True`` and
``attrs["row_cap"]``. ``sql_policy()`` says which tables chat SQL may read (see :mod:`ctg_app.chatbot.policy`).

They bound memory too, since one function call is one engine step (``randomblob(1e8)`` is "fast"): on SQLite no
single value may exceed ``CHAT_MAX_VALUE_BYTES`` (``SQLITE_LIMIT_LENGTH``) and a result at most
:data:`MAX_RESULT_COLUMNS` columns; on both sources the rows are fetched in chunks and the fetch stops, with
:class:`ResultTooLarge`, once their values add up to more than ``CHAT_MAX_RESULT_BYTES``. On Databricks the policy
refuses the functions that build big values and the connector is asked for at most that many bytes per fetch.

On Databricks, chat SQL can run on behalf of the signed-in user (``CTG_QUERY_IDENTITY``): pass the user's access token
(Databricks Apps forwards it in ``X-Forwarded-Access-Token``) as ``run_sql(..., user_token=...)`` or bind it for the
thread with :func:`acting_as`, and the statement runs with that token, so Unity Catalog row filters and column masks
apply and the query history names the user. The token is only handed to the connector: it is never logged, recorded
or put into an error message, and sessions are kept per thread under a hash of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import sqlglot
from sqlglot import exp

from ctg_app.chatbot.data.sample import SCHEMA, ensure_sample_db
from ctg_app.chatbot.policy import SqlPolicy, visible_ctes
from ctg_app.settings import Settings, get_settings
from ctg_app.errors import DatabaseUnavailableError, SqlValidationError

log = logging.getLogger(__name__)

OnWait = Callable[[float], None]


class QueryTimeout(sqlite3.OperationalError):
    """A chat query ran longer than ``CHAT_QUERY_TIMEOUT_S`` and was stopped (a database error, said plainly)."""


class ResultTooLarge(SqlValidationError):
    """A chat query asked for more data than ``CHAT_MAX_VALUE_BYTES`` / ``CHAT_MAX_RESULT_BYTES`` allow (the message
    says which bound and how to narrow the query; recorded as ``sql_error``: the query asked for too much)."""


#: At most this many result columns (SQLite: ``SQLITE_LIMIT_COLUMN``): with the value limit it bounds one row's size.
MAX_RESULT_COLUMNS = 100
#: Rows per fetch while the byte budget is counted.
FETCH_CHUNK_ROWS = 500


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 1048576 else f"{n / 1024:.0f} KiB"


def value_bytes(value: Any) -> int:
    """About how many bytes ``value`` holds (text as UTF-8 at most 4 bytes a character, numbers 8)."""
    if isinstance(value, str):
        return len(value) if value.isascii() else 4 * len(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    return 8


def fetch_bounded(fetchmany: Callable[[int], list], max_rows: int, max_bytes: int) -> list:
    """Up to ``max_rows + 1`` rows from ``fetchmany`` in chunks, stopping with :class:`ResultTooLarge` as soon as
    their values add up to more than ``max_bytes``."""
    rows: list = []
    total = 0
    while len(rows) <= max_rows:
        chunk = fetchmany(min(FETCH_CHUNK_ROWS, max_rows + 1 - len(rows)))
        if not chunk:
            break
        for row in chunk:
            total += sum(value_bytes(v) for v in row)
            if total > max_bytes:
                raise ResultTooLarge(
                    f"the result is larger than CHAT_MAX_RESULT_BYTES={max_bytes} ({_mib(max_bytes)}) after "
                    f"{len(rows)} rows; select fewer columns or rows (filters, aggregates)")
            rows.append(row)
    return rows


class DataSourceConfigError(ValueError):
    """The data source settings cannot be used (message is safe to show to users)."""


class DataSource(Protocol):
    """Runs SQL against the CTG tables."""

    dialect: str
    display_dialect: str

    def run_sql(self, sql: str) -> pd.DataFrame:
        """Execute one statement and return its rows."""
        ...

    def describe(self) -> str:
        """A short human description (no secrets)."""
        ...

    def sql_policy(self) -> SqlPolicy:
        """What chat SQL may read from this source."""
        ...


def _frame(rows: list, columns: list[str], max_rows: int) -> pd.DataFrame:
    """The result frame, cut to ``max_rows`` (``rows`` holds up to one more, which tells that it was cut)."""
    capped = len(rows) > max_rows
    df = pd.DataFrame([tuple(r) for r in rows[:max_rows]], columns=columns)
    df.attrs["capped"] = capped
    df.attrs["row_cap"] = max_rows
    return df


def _usage_table(settings: Settings) -> tuple[str, ...]:
    return (str(settings.tracking_table or "").replace("`", "").lower(),)


def _date_part(fmt: str):
    def fn(value: str | None) -> int | None:
        if value is None:
            return None
        try:
            day = dt.date.fromisoformat(str(value)[:10])
        except ValueError:
            return None
        return fmt_map[fmt](day)

    fmt_map = {
        "year": lambda d: d.year,
        "month": lambda d: d.month,
        "day": lambda d: d.day,
        "quarter": lambda d: (d.month - 1) // 3 + 1,
    }
    return fn


class SampleSQLiteSource:
    """The embedded sample database, opened read-only; adds YEAR/MONTH/DAY/QUARTER functions SQLite lacks."""

    dialect = "sqlite"
    display_dialect = "SQLite"

    def __init__(self, path: Path | str, *, timeout_s: float = 30.0, max_rows: int = 10000,
                 refused_names: tuple[str, ...] = (), max_value_bytes: int = 262_144,
                 max_result_bytes: int = 33_554_432) -> None:
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        self.max_rows = int(max_rows)
        self.max_value_bytes = int(max_value_bytes)
        self.max_result_bytes = int(max_result_bytes)
        self.refused_names = refused_names
        self._policy: SqlPolicy | None = None

    def _connect(self) -> sqlite3.Connection:
        ensure_sample_db(self.path)
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        for name in ("year", "month", "day", "quarter"):
            conn.create_function(name.upper(), 1, _date_part(name), deterministic=True)
        # one function call is one VM step: only these limits stop randomblob(1e9) / a huge group_concat in time
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
        conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, MAX_RESULT_COLUMNS)
        return conn

    def run_sql(self, sql: str) -> pd.DataFrame:
        """Execute ``sql`` on a fresh read-only connection, within the time limit and row cap."""
        conn = self._connect()
        deadline = time.monotonic() + self.timeout_s
        # called every N virtual-machine steps; a non-zero return makes SQLite stop with "interrupted"
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 20_000)
        try:  # a plain cursor, not pandas.read_sql: sqlite3's own exceptions reach the error classification
            cursor = conn.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            return _frame(fetch_bounded(cursor.fetchmany, self.max_rows, self.max_result_bytes), columns,
                          self.max_rows)
        except sqlite3.DataError as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_TOOBIG" or "too big" in str(exc):
                raise ResultTooLarge(
                    f"the query builds a value larger than CHAT_MAX_VALUE_BYTES={self.max_value_bytes} "
                    f"({_mib(self.max_value_bytes)}); chat answers need no values that big") from None
            raise
        except sqlite3.OperationalError as exc:
            if "too many columns" in str(exc):
                raise ResultTooLarge(f"the query returns more than {MAX_RESULT_COLUMNS} columns; select the columns "
                                     "you need") from None
            if "interrupted" in str(exc) and time.monotonic() > deadline:
                raise QueryTimeout(
                    f"the query was stopped after CHAT_QUERY_TIMEOUT_S={self.timeout_s:g} s; "
                    "narrow it down (filters, fewer joins)") from None
            raise
        finally:
            conn.close()

    def sql_policy(self) -> SqlPolicy:
        """The database's own data tables (not ``sqlite_*`` nor internal ``_*`` ones), unqualified or under ``main``."""
        if self._policy is None:
            conn = self._connect()
            try:
                names = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite%' "
                    "AND name NOT LIKE '\\_%' ESCAPE '\\'")]
                tables = {n.lower(): frozenset(r[1].lower() for r in conn.execute(f'PRAGMA table_info("{n}")'))
                          for n in names}
            finally:
                conn.close()
            self._policy = SqlPolicy("sqlite", tables, ("main",), self.max_rows, refused_names=self.refused_names)
        return self._policy

    def describe(self) -> str:
        """Where the sample database is."""
        return f"sample SQLite database at {self.path}"


def qualify_tables(sql: str, catalog: str | None, schema: str | None, dialect: str = "databricks") -> str:
    """Prefix unqualified table names (not CTE names) with ``catalog.schema``."""
    if not schema:
        return sql
    tree = sqlglot.parse_one(sql, read=dialect)
    for table in tree.find_all(exp.Table):
        # a name is a CTE only where that CTE is visible (a CTE named like a table elsewhere must not hide it)
        if not table.args.get("db") and table.name.lower() not in visible_ctes(table):
            table.set("db", exp.to_identifier(schema))
            if catalog:
                table.set("catalog", exp.to_identifier(catalog))
    return tree.sql(dialect=dialect)


class DatabricksSource:
    """A Databricks SQL warehouse reached through ``ctg_app.warehouse.connection.connect``."""

    dialect = "databricks"
    display_dialect = "Databricks SQL"

    def __init__(self, settings: Settings) -> None:
        if not settings.data_schema or settings.data_schema.count(".") != 1:
            raise DataSourceConfigError(
                "CTG_DATA_SOURCE=databricks needs CTG_DATA_SCHEMA set to 'catalog.schema' (where the CTG tables live)."
            )
        self.settings = settings
        self.catalog, self.schema = settings.data_schema.split(".")
        self.timeout_s = float(settings.chat_query_timeout_s)
        self.max_rows = int(settings.chat_max_rows)
        self.max_result_bytes = int(settings.chat_max_result_bytes)
        self._policy: SqlPolicy | None = None
        # One warehouse session per thread, reused across queries (opening one is a round trip, about a second on a
        # cold warehouse); a connection is not shared between threads (PEP 249 thread safety level 1).
        self._local = threading.local()

    def identity_token(self, user_token: str | None) -> str | None:
        """The token chat SQL runs with under ``CTG_QUERY_IDENTITY``: the user's (``user``, or ``auto`` when the
        request carried one), or None for the service principal. ``user`` without a token raises
        :class:`DataSourceConfigError`."""
        mode = self.settings.query_identity
        if mode == "service-principal":
            return None
        if mode == "user" and not user_token:
            raise DataSourceConfigError(
                "This app runs questions as the signed-in user (CTG_QUERY_IDENTITY=user), but the request carried no "
                "user token: enable user authorization for the app (the sql scope), or set CTG_QUERY_IDENTITY=auto.")
        return user_token or None

    def _connection(self, user_token: str | None = None) -> Any:
        # one session per thread, for one identity: another user's token on this thread opens a fresh session
        key = "sp" if not user_token else hashlib.sha256(user_token.encode()).hexdigest()
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "key", None) != key:
            self._discard_connection()
            conn = None
        if conn is None or not conn.open:
            from databricks import sql  # lazy: only this source needs the connector

            from ctg_app.warehouse.connection import connect_kwargs

            kwargs = connect_kwargs(self.data_settings(), catalog=self.catalog, schema=self.schema,
                                    user_token=user_token)
            # enforced by the warehouse itself; the connector (4.x) has no per-statement timeout argument
            kwargs["session_configuration"] = {**kwargs.get("session_configuration", {}),
                                               "STATEMENT_TIMEOUT": str(max(1, math.ceil(self.timeout_s)))}
            conn = self._local.conn = sql.connect(**kwargs)
            self._local.key = key
        return conn

    def data_settings(self) -> Settings:
        """The settings with the chat's own read-only credentials (``CTG_DATA_*``) in place of the flusher's."""
        s = self.settings
        if s.data_access_token:
            return s.replace(databricks_access_token=s.data_access_token, databricks_client_id=None,
                             databricks_client_secret=None)
        if s.data_client_id and s.data_client_secret:
            return s.replace(databricks_access_token=None, databricks_client_id=s.data_client_id,
                             databricks_client_secret=s.data_client_secret)
        return s

    def _discard_connection(self) -> None:
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is broken already; a fresh one is opened next time
                log.debug("closing a broken warehouse connection failed", exc_info=True)

    def run_sql(self, sql: str, on_wait: OnWait | None = None, *, user_token: str | None = None) -> pd.DataFrame:
        """Execute ``sql`` with unqualified tables resolved in CTG_DATA_SCHEMA (on this thread's session).

        ``user_token`` (else the one bound by :func:`acting_as`): the signed-in user's access token; whether it is
        used is ``CTG_QUERY_IDENTITY``'s choice (:meth:`identity_token`).

        A warehouse that is starting (HTTP 503/429 after the connector's own bounded retries) is waited for, up to
        ``WAREHOUSE_START_TIMEOUT_S``, calling ``on_wait(elapsed_s)`` (or the callback bound by
        :func:`reporting_warehouse_start`) about once a second; then :class:`WarehouseStartTimeout`. Any other
        error is raised at once. Either way the caller sees one call, so ``@tracked`` records one event.
        """
        on_wait = on_wait or getattr(_waiters, "on_wait", None)
        token = self.identity_token(user_token or getattr(_acting, "user_token", None))
        limit = float(self.settings.warehouse_start_timeout_s)
        started = time.monotonic()
        while True:
            try:
                return self._execute(sql, token)
            except Exception as exc:
                if not warehouse_is_starting(exc):
                    raise
                elapsed = time.monotonic() - started
                if elapsed >= limit:
                    raise WarehouseStartTimeout(limit) from exc
                log.info("SQL warehouse is starting (%s); waited %.0f s of %.0f s", type(exc).__name__, elapsed, limit)
                _wait(min(START_POLL_S, limit - elapsed), started, on_wait)

    def _execute(self, sql: str, user_token: str | None = None) -> pd.DataFrame:
        """One attempt of :meth:`run_sql` on this thread's session (for ``user_token``, or the service principal)."""
        from databricks.sql.exc import ServerOperationError

        statement = qualify_tables(sql, self.catalog, self.schema)
        conn = self._connection(user_token)
        try:
            # the connector's own bounds: rows and bytes per fetch (direct results), so no fetch brings much more than
            # the budget fetch_bounded counts
            with conn.cursor(row_limit=self.max_rows + 1, arraysize=FETCH_CHUNK_ROWS,
                             buffer_size_bytes=self.max_result_bytes) as cursor:
                cursor.execute(statement)
                columns = [d[0] for d in (cursor.description or [])]
                if len(columns) > MAX_RESULT_COLUMNS:
                    raise ResultTooLarge(f"the query returns more than {MAX_RESULT_COLUMNS} columns; select the "
                                         "columns you need")
                rows = fetch_bounded(cursor.fetchmany, self.max_rows, self.max_result_bytes)
        except (ServerOperationError, ResultTooLarge):
            raise  # the statement failed; the session is fine
        except Exception:
            self._discard_connection()  # transport or session trouble: start afresh next time
            raise
        return _frame(rows, columns, self.max_rows)

    def sql_policy(self) -> SqlPolicy:
        """The CTG tables under ``CTG_DATA_SCHEMA`` (unqualified, ``schema.t`` or ``catalog.schema.t``)."""
        if self._policy is None:
            tables = {t: frozenset(c for c, _ in cols) for t, cols in SCHEMA.items()}
            qualifiers = (f"{self.catalog}.{self.schema}".lower(), self.schema.lower())
            self._policy = SqlPolicy("databricks", tables, qualifiers, self.max_rows,
                                     refused_names=_usage_table(self.settings))
        return self._policy

    def describe(self) -> str:
        """The schema the tables are read from."""
        return f"Databricks SQL warehouse, schema {self.catalog}.{self.schema}"


# ----- a warehouse that is starting ------------------------------------------------------------------------------

START_POLL_S = 2.0  # pause between attempts; the connector itself already waits >= 5 s per 503 it retries
_waiters = threading.local()


class WarehouseStartTimeout(DatabaseUnavailableError):
    """The SQL warehouse was still starting after ``WAREHOUSE_START_TIMEOUT_S`` (message safe to show to users)."""

    def __init__(self, waited_s: float) -> None:
        self.waited_s = waited_s
        super().__init__(
            f"The SQL warehouse is still starting after {waited_s:.0f} s. Please try again in a minute "
            "(WAREHOUSE_START_TIMEOUT_S sets how long a question waits)."
        )


def warehouse_is_starting(exc: BaseException) -> bool:
    """True when a connector error means "busy or starting, come back later": HTTP 503/429 (with Retry-After the
    connector gives up at once with ``MaxRetryDurationError``). Not when the chain (``__context__`` included) shows
    the server never answered: a hung warehouse also ends in ``MaxRetryDurationError``, raised while handling a read
    timeout. Connection refused, timeouts and SQL errors are not "starting"."""
    from ctg_app.warehouse.connection import http_status_of

    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    starting = False
    while todo and len(seen) < 12:
        current = todo.pop(0)
        seen.append(current)
        if isinstance(current, (TimeoutError, ConnectionError)) or type(current).__name__ in _NO_ANSWER:
            return False
        if type(current).__name__ == "MaxRetryDurationError" and type(current).__module__.startswith("databricks."):
            starting = True
        if type(current).__module__.startswith(("databricks.", "urllib3.")):
            if http_status_of(current) in (429, 503) or "too many 503" in str(current) or "too many 429" in str(current):
                starting = True
        todo += [e for e in (*getattr(current, "args", ()), current.__cause__, current.__context__,
                             getattr(current, "reason", None))
                 if isinstance(e, BaseException) and e not in seen]
    return starting


#: urllib3's names for "the server did not answer" (they do not all derive from the builtin TimeoutError).
_NO_ANSWER = frozenset({"ReadTimeoutError", "ConnectTimeoutError", "NewConnectionError", "ProtocolError"})


def _wait(seconds: float, started: float, on_wait: OnWait | None) -> None:
    """Sleep ``seconds`` in slices of at most 1 s, reporting the total elapsed time after each (callback errors are
    logged, never raised: a broken progress display must not fail the query)."""
    deadline = time.monotonic() + seconds
    while True:
        if on_wait is not None:
            try:
                on_wait(time.monotonic() - started)
            except Exception:  # noqa: BLE001
                log.debug("warehouse start progress callback failed", exc_info=True)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(1.0, remaining))


@contextlib.contextmanager
def reporting_warehouse_start(on_wait: OnWait) -> Iterator[None]:
    """Within the block, ``run_sql`` calls on this thread report a starting warehouse to ``on_wait(elapsed_s)``
    (for call chains that do not pass the callback themselves, e.g. ``vn.run_sql`` behind a cache)."""
    previous = getattr(_waiters, "on_wait", None)
    _waiters.on_wait = on_wait
    try:
        yield
    finally:
        _waiters.on_wait = previous


_acting = threading.local()


@contextlib.contextmanager
def acting_as(user_token: str | None) -> Iterator[None]:
    """Within the block, Databricks chat SQL on this thread runs with ``user_token`` (the signed-in user's, from
    ``X-Forwarded-Access-Token``) where ``CTG_QUERY_IDENTITY`` allows; for call chains that do not pass it
    (``vn.run_sql`` behind a cache)."""
    previous = getattr(_acting, "user_token", None)
    _acting.user_token = user_token or None
    try:
        yield
    finally:
        _acting.user_token = previous


def acting_identity_key() -> str:
    """A short hash of the user token bound by :func:`acting_as` ("" when none): result caches shared across users
    must include it, since answers run as the user differ per user (row filters, masks)."""
    token = getattr(_acting, "user_token", None)
    return "" if not token else ":user-" + hashlib.sha256(token.encode()).hexdigest()[:16]


def make_data_source(settings: Settings | None = None) -> DataSource:
    """The data source the settings ask for (``CTG_DATA_SOURCE``: sample | databricks)."""
    settings = settings or get_settings()
    kind = (settings.data_source or "sample").strip().lower()
    if kind in ("sample", "local", "sqlite"):
        return SampleSQLiteSource(settings.sample_db_path, timeout_s=settings.chat_query_timeout_s,
                                  max_rows=settings.chat_max_rows, refused_names=_usage_table(settings),
                                  max_value_bytes=settings.chat_max_value_bytes,
                                  max_result_bytes=settings.chat_max_result_bytes)
    if kind == "databricks":
        return DatabricksSource(settings)
    raise DataSourceConfigError(f"Unknown CTG_DATA_SOURCE {settings.data_source!r}: use 'sample' or 'databricks'.")
