"""Facts read from an exception without importing anything: its class path, and a Databricks error's condition,
SQLSTATE and HTTP status.

This is the ground floor both error classifiers decide from, so each rule is written once:
:func:`ctg_app.warehouse.errors.classify_error` turns the facts into a warehouse verdict (transient / configuration /
rejected), and :class:`ctg_app.tracking.recording.classify.ErrorClassifier` turns them into the spec's error action.

Classes are matched by import path (``"databricks.sql.exc.RequestError"``, or a module prefix such as ``"openai"``)
along the exception's class hierarchy, so no client library is imported to classify its errors. The connector keeps
neither the SQLSTATE nor the error condition as attributes (``ServerOperationError`` only carries the server's
message), so they are read from the two fixed places of Databricks' documented message format,
``[ERROR_CLASS.SUB] ... SQLSTATE: 42P01`` (and from ``diagnostic-info`` when present) - never from the wording between.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Databricks' message format: a leading ``[CONDITION.SUBCONDITION]`` and a trailing ``SQLSTATE: XXXXX``.
_CONDITION = re.compile(r"^\s*\[([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)\]")
_SQLSTATE = re.compile(r"SQLSTATE:\s*([0-9A-Z]{5})\b")

#: Error conditions saying the SQL itself is wrong (besides SQLSTATE class 42).
_SQL_PROBLEM_CONDITIONS = ("PARSE_SYNTAX_ERROR", "TABLE_OR_VIEW_NOT_FOUND", "UNRESOLVED_COLUMN", "UNRESOLVED_ROUTINE")
#: Error conditions and SQLSTATEs saying a table, schema or catalog does not exist.
_MISSING_CONDITIONS = ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND", "CATALOG_NOT_FOUND", "DELTA_TABLE_NOT_FOUND",
                       "DELTA_PATH_DOES_NOT_EXIST")
_MISSING_SQLSTATES = ("42P01", "42704", "3F000", "42P06")
#: The condition of a statement stopped by the warehouse's ``STATEMENT_TIMEOUT``.
STATEMENT_TIMEOUT_CONDITION = "QUERY_EXECUTION_TIMEOUT_EXCEEDED"


def class_paths(exc: BaseException) -> list[str]:
    """``module.QualName`` of the exception's class and every base class."""
    return [f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__]


def matches(path: str, name: str) -> bool:
    """``name`` is a class path (exact) or a module prefix (``"openai"`` matches ``openai._exceptions.APIError``)."""
    return path == name or path.startswith(name + ".")


def is_a(exc: BaseException, names: Iterable[str]) -> bool:
    """True when the exception's class, or a base class, lives at one of ``names`` (class paths or module prefixes)."""
    names = tuple(names)
    return any(matches(path, name) for path in class_paths(exc) for name in names)


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it wraps (``context["original-exception"]``, ``__cause__``, exception args)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 12:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        context = getattr(current, "context", None)
        nested = [context.get("original-exception")] if isinstance(context, dict) else []
        todo += [e for e in (*nested, *current.args, current.__cause__) if isinstance(e, BaseException)]
    return found


def error_facts(exc: BaseException) -> tuple[str | None, str | None, int | None]:
    """``(error_class, sqlstate, http_status)`` of a warehouse error, each None when it does not carry it."""
    context = getattr(exc, "context", None)
    context = context if isinstance(context, dict) else {}
    code = context.get("http-code")
    http_status = code if isinstance(code, int) else None
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) else (str(exc.args[0]) if exc.args and isinstance(exc.args[0], str)
                                                     else "")
    condition = _CONDITION.match(text)
    state = _SQLSTATE.search(text) or _SQLSTATE.search(str(context.get("diagnostic-info") or ""))
    return (condition.group(1) if condition else None, state.group(1) if state else None, http_status)


def is_sql_problem(exc: BaseException) -> bool:
    """True when a warehouse refused a statement because of the SQL itself (SQLSTATE class 42: syntax, unknown table
    or column, access rule) - what the app records as an ``sql_error`` rather than a ``database_error``."""
    error_class, sqlstate, _ = error_facts(exc)
    return bool((sqlstate and sqlstate[:2] == "42") or (error_class and error_class.startswith(_SQL_PROBLEM_CONDITIONS)))


def is_missing_object(exc: BaseException) -> bool:
    """True when a warehouse error says the table, schema or catalog does not exist (error condition or SQLSTATE)."""
    error_class, sqlstate, _ = error_facts(exc)
    return bool((error_class and error_class.startswith(_MISSING_CONDITIONS)) or sqlstate in _MISSING_SQLSTATES)

