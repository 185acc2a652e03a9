"""Error classification: which error action a failed operation records.

A :class:`ErrorClassifier` is an ordered table of small rules, each mapping an exception to an error action or passing.
Rules name exception classes by their import path (``"openai"``, ``"databricks.sql.exc.RequestError"``) and are matched
against the exception's class hierarchy, so no client library is ever imported to classify its errors. When no rule
matches, the operation's own default applies (an error inside ``generate_chart`` is a ``chart_error``), then ``app_error``.
Class matching and a Databricks error's condition / SQLSTATE come from :mod:`ctg_app.error_facts`, the facts the
warehouse's own verdict (:func:`ctg_app.warehouse.errors.classify_error`) is decided from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ctg_app.error_facts import is_a, is_sql_problem
from ctg_app.tracking.recording.actions import Actions

Rule = Callable[[BaseException], "str | None"]


@dataclass(frozen=True)
class ByType:
    """Matches when the exception (or a base class) lives at one of ``names`` (class paths or module prefixes)."""

    names: tuple[str, ...]
    action: str

    def __call__(self, exc: BaseException) -> str | None:
        return self.action if is_a(exc, self.names) else None


@dataclass(frozen=True)
class ByMessage:
    """Matches an exception of one of ``names`` whose message matches ``pattern`` (case-insensitive)."""

    names: tuple[str, ...]
    pattern: str
    action: str

    def __call__(self, exc: BaseException) -> str | None:
        if is_a(exc, self.names) and re.search(self.pattern, str(exc), re.IGNORECASE):
            return self.action
        return None


@dataclass(frozen=True)
class WarehouseSqlProblem:
    """Matches a Databricks error whose error condition / SQLSTATE says the SQL itself is wrong (class 42), read by
    the ground-floor facts the warehouse's verdict uses too (:func:`ctg_app.error_facts.is_sql_problem`)."""

    action: str

    def __call__(self, exc: BaseException) -> str | None:
        return self.action if is_a(exc, ("databricks.sql.exc",)) and is_sql_problem(exc) else None


# SQLite has no SQLSTATE: its result code SQLITE_ERROR (generic "SQL error or missing database") marks bad SQL;
# these phrases decide only for exceptions that carry no result code (constructed by hand or by a wrapper).
_BAD_SQLITE = r"syntax error|no such (table|column|function)|ambiguous column|unrecognized token|incomplete input"


@dataclass(frozen=True)
class SqliteSqlProblem:
    """Matches an ``sqlite3.OperationalError`` caused by the SQL itself (result code ``SQLITE_ERROR``)."""

    action: str

    def __call__(self, exc: BaseException) -> str | None:
        if not is_a(exc, ("sqlite3.OperationalError",)):
            return None
        name = getattr(exc, "sqlite_errorname", None)
        if name is not None:
            return self.action if name == "SQLITE_ERROR" else None
        return self.action if re.search(_BAD_SQLITE, str(exc), re.IGNORECASE) else None

DEFAULT_RULES: tuple[Rule, ...] = (
    # Our own markers first: the app says exactly what went wrong.
    ByType(("ctg_app.errors.SqlValidationError",), Actions.SQL_ERROR),
    ByType(("ctg_app.errors.ChartError",), Actions.CHART_ERROR),
    ByType(("ctg_app.errors.LlmError",), Actions.LLM_ERROR),
    ByType(("ctg_app.errors.DatabaseUnavailableError",), Actions.DATABASE_ERROR),
    # SQL that cannot be parsed or refers to things that do not exist is an sql_error, whichever engine says so.
    ByType(("sqlglot.errors",), Actions.SQL_ERROR),
    ByType(("_duckdb.ParserException", "_duckdb.BinderException", "_duckdb.CatalogException"), Actions.SQL_ERROR),
    SqliteSqlProblem(Actions.SQL_ERROR),
    WarehouseSqlProblem(Actions.SQL_ERROR),
    # The database or warehouse failed: connector errors, the urllib3 errors it leaks after retries, driver errors.
    ByType(("databricks.sql.exc", "urllib3.exceptions", "requests.exceptions", "sqlite3", "_duckdb", "duckdb"),
           Actions.DATABASE_ERROR),
    # Language-model clients (never imported here: matched by name).
    ByType(("openai", "anthropic", "ollama", "httpx", "google.api_core.exceptions", "mistralai"), Actions.LLM_ERROR),
    # Chart libraries.
    ByType(("plotly", "_plotly_utils", "kaleido"), Actions.CHART_ERROR),
)

# What an unrecognised exception inside an operation means.
DEFAULT_OPERATION_ERRORS: Mapping[str, str] = {
    Actions.GENERATE_CHART: Actions.CHART_ERROR,
    Actions.SQL_QUERY: Actions.LLM_ERROR,
    Actions.GENERATE_SUMMARY: Actions.LLM_ERROR,
    Actions.EXECUTE_SQL: Actions.SQL_ERROR,
    Actions.EDIT_SQL: Actions.SQL_ERROR,
}


class ErrorClassifier:
    """Maps an exception raised by an operation to the error action to record."""

    def __init__(
        self,
        rules: Iterable[Rule] = DEFAULT_RULES,
        operation_defaults: Mapping[str, str] = DEFAULT_OPERATION_ERRORS,
        fallback: str = Actions.APP_ERROR,
    ) -> None:
        self.rules = tuple(rules)
        self.operation_defaults = dict(operation_defaults)
        self.fallback = fallback

    def classify(self, exc: BaseException, operation: str | None = None) -> str:
        """The error action for ``exc`` raised inside ``operation``: first matching rule, operation default, fallback."""
        for rule in self.rules:
            action = rule(exc)
            if action:
                return action
        if operation in Actions.errors():  # tracking an error action itself: keep it
            return operation
        return self.operation_defaults.get(operation or "", self.fallback)

    def with_rules(self, *rules: Rule) -> ErrorClassifier:
        """A copy that tries ``rules`` before the existing ones (how an app adds its own classification)."""
        return ErrorClassifier(rules + self.rules, self.operation_defaults, self.fallback)
