"""One classifier for warehouse errors: *transient*, *configuration* or *rejected* (with a reason), from facts.

The facts are the exception's class (matched by import path along its class hierarchy, so nothing is imported to
classify), the HTTP status the connector puts in ``exc.context["http-code"]``, and the Databricks error condition and
SQLSTATE, all read by :mod:`ctg_app.error_facts` (the ground floor the request path's error classifier reads too).

- **transient**: the warehouse could not do it now (network, timeouts, 429/5xx, Delta write conflicts, SQLSTATE
  classes 08/40/53/57/58/XX, anything unrecognised). Retry later; never dead-letter.
- **configuration**: settings, credentials or the table are wrong (401/403/404, missing table or column, wrong types,
  permissions: SQLSTATE class 42 and 3F/0A). Pause delivery (exit code 3); retry by itself once fixed.
- **rejected**: this data can never be stored as it is (SQLSTATE class 22 data exceptions, 23 constraints, 54 limits
  such as the 1 MB parameter limit). Only these may dead-letter, and only the events that cause them (the flush
  bisects a batch down to them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctg_app.error_facts import STATEMENT_TIMEOUT_CONDITION, chain, error_facts, is_a

TRANSIENT = "transient"
CONFIGURATION = "configuration"
REJECTED = "rejected"

# SQLSTATE classes (first two characters).
_TRANSIENT_CLASSES = {"08", "40", "53", "57", "58", "XX", "HY", "25", "2D"}
_CONFIG_CLASSES = {"42", "3F", "0A", "28", "44", "KD", "P0"}
_REJECTED_CLASSES = {"22", "23", "54"}
# Error conditions that decide on their own (the SQLSTATE may be missing or generic).
_TRANSIENT_CONDITIONS = ("DELTA_CONCURRENT", "CONCURRENT_", "TEMPORARILY_UNAVAILABLE", "WAREHOUSE_", "INTERNAL_ERROR")
_CONFIG_CONDITIONS = ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND", "CATALOG_NOT_FOUND", "UNRESOLVED_COLUMN",
                      "INSUFFICIENT_PERMISSIONS", "PERMISSION_DENIED", "DATATYPE_MISMATCH", "DELTA_FAILED_TO_MERGE",
                      "CANNOT_UP_CAST", "INCOMPATIBLE_DATA", "DELTA_SCHEMA", "DELTA_TABLE_NOT_FOUND")
_REJECTED_CONDITIONS = ("PARAMETER_VALUES_TOO_LARGE", "TOO_MANY_PARAMETERS", "CAST_INVALID_INPUT",
                        "CAST_OVERFLOW", "STRING_TOO_LONG", "EXCEED_LIMIT_LENGTH", "DELTA_NOT_NULL_CONSTRAINT",
                        "DELTA_VIOLATE_CONSTRAINT", "CONSTRAINT_VIOLATION", "MALFORMED_RECORD")

# HTTP statuses the connector reports in context["http-code"].
_HTTP_CONFIG = {400: "bad request", 401: "credentials rejected", 403: "access denied", 404: "warehouse not found",
                501: "not implemented"}

# Our own exception classes decide by themselves (checked first, by import path).
_OWN_RULES: tuple[tuple[str, str, str], ...] = (
    ("ctg_app.warehouse.errors.TableSchemaError", CONFIGURATION, "table unusable"),
    ("ctg_app.warehouse.errors.EventTooLarge", REJECTED, "event too large"),
    ("ctg_app.warehouse.errors.WarehouseConfigError", CONFIGURATION, "settings"),
    ("ctg_app.warehouse.connection.ServicePrincipalRejected", CONFIGURATION, "credentials rejected"),
    ("ctg_app.warehouse.connection.OAuthUnavailable", TRANSIENT, "OAuth endpoint unavailable"),
)
# Library exception classes by import path (a class or a module prefix), most specific first; consulted after the
# HTTP status, error condition and SQLSTATE.
_CLASS_RULES: tuple[tuple[str, str, str], ...] = (
    ("databricks.sql.exc.ReydenThriftUnsupportedError", CONFIGURATION, "warehouse type unsupported"),
    ("databricks.sql.exc.NonRecoverableNetworkError", CONFIGURATION, "not implemented (HTTP 501)"),
    ("databricks.sql.exc.RequestError", TRANSIENT, "request failed"),
    ("databricks.sql.exc.ServerOperationError", TRANSIENT, "statement failed"),
    ("databricks.sql.exc.DatabaseError", TRANSIENT, "server error"),
    ("databricks.sql.exc.InterfaceError", TRANSIENT, "connection closed"),
    ("databricks.sql.exc.Error", TRANSIENT, "warehouse error"),
    ("urllib3.exceptions", TRANSIENT, "network"),
    ("requests.exceptions", TRANSIENT, "network"),
    ("builtins.TimeoutError", TRANSIENT, "timed out"),
    ("builtins.OSError", TRANSIENT, "network"),
)


class WarehouseConfigError(ValueError):
    """The warehouse settings are missing or unusable (the message names the setting, never a secret)."""


class TableSchemaError(WarehouseConfigError):
    """The central table exists but cannot take the events (a spec column missing, or a column of the wrong type)."""


class EventTooLarge(ValueError):
    """One event is larger than one statement may carry (Databricks: 1 MB of parameter values)."""


@dataclass(frozen=True)
class Verdict:
    """What a warehouse error means: ``kind`` (transient / configuration / rejected), a short ``reason`` and the facts
    it was decided on."""

    kind: str
    reason: str
    error_class: str | None = None
    sqlstate: str | None = None
    http_status: int | None = None

    @property
    def is_auth(self) -> bool:
        """True when the credentials were refused (HTTP 401/403 or the service principal rejected)."""
        return self.http_status in (401, 403) or self.reason == "credentials rejected"

    @property
    def is_conflict(self) -> bool:
        """True for a Delta concurrent-write conflict (retry the statement at once, with jitter)."""
        return bool(self.error_class and self.error_class.startswith(("DELTA_CONCURRENT", "CONCURRENT_"))) or (
            self.sqlstate == "2D521")

    @property
    def is_statement_timeout(self) -> bool:
        """True when the warehouse stopped the statement at its ``STATEMENT_TIMEOUT``."""
        return bool(self.error_class and self.error_class.startswith(STATEMENT_TIMEOUT_CONDITION))


def classify_error(exc: BaseException) -> Verdict:
    """The :class:`Verdict` for ``exc``, any exception a warehouse call (or the flush around it) can raise."""
    error_class, sqlstate, http_status = error_facts(exc)

    def verdict(kind: str, reason: str) -> Verdict:
        return Verdict(kind, reason, error_class, sqlstate, http_status)

    for link in chain(exc):  # the connector wraps errors of our credentials provider in a RequestError
        for name, kind, reason in _OWN_RULES:
            if is_a(link, (name,)):
                return verdict(kind, reason)
    if http_status is not None:
        if http_status in _HTTP_CONFIG:
            return verdict(CONFIGURATION, f"{_HTTP_CONFIG[http_status]} (HTTP {http_status})")
        if http_status == 413:
            return verdict(REJECTED, "request too large (HTTP 413)")
        return verdict(TRANSIENT, f"HTTP {http_status}")
    if error_class:
        for prefixes, kind in ((_TRANSIENT_CONDITIONS, TRANSIENT), (_REJECTED_CONDITIONS, REJECTED),
                               (_CONFIG_CONDITIONS, CONFIGURATION)):
            if error_class.startswith(prefixes):
                return verdict(kind, error_class)
    if sqlstate:
        klass = sqlstate[:2]
        if klass in _REJECTED_CLASSES:
            return verdict(REJECTED, f"SQLSTATE {sqlstate}")
        if klass in _CONFIG_CLASSES:
            return verdict(CONFIGURATION, f"SQLSTATE {sqlstate}")
        if klass in _TRANSIENT_CLASSES:
            return verdict(TRANSIENT, f"SQLSTATE {sqlstate}")
    for name, kind, reason in _CLASS_RULES:
        if is_a(exc, (name,)):
            return verdict(kind, reason)
    return verdict(TRANSIENT, f"unrecognised {type(exc).__name__}")


ADVICE = {
    "credentials rejected": "check DATABRICKS_ACCESS_TOKEN (or DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET)",
    "access denied": "grant the identity CAN USE on the warehouse and MODIFY on the table",
    "warehouse not found": "check DATABRICKS_HTTP_PATH (or DATABRICKS_WAREHOUSE_ID)",
    "settings": "fix the setting named above (see the README's settings table)",
    "table unusable": "check TRACKING_TABLE; `flush-spool --migrate` creates it or adds missing columns",
}


def advice(verdict: Verdict) -> str:
    """One line telling an operator what to do about an error with this verdict."""
    for key, text in ADVICE.items():
        if verdict.reason.startswith(key):
            return text
    if verdict.kind == CONFIGURATION:
        return ("the warehouse refused the table or the identity's rights: check TRACKING_TABLE, its column types "
                "and the identity's permissions; delivery resumes by itself once fixed")
    if verdict.kind == REJECTED:
        return "the warehouse refused some events for good: inspect with `flush-spool --status`"
    return ("warehouse unreachable or busy: check DATABRICKS_SERVER_HOSTNAME / DATABRICKS_CONNECTION_URI, the network, "
            "and that the warehouse is running (WAREHOUSE_TIMEOUT_S bounds the wait); events stay pending")
