"""Connections to the Databricks SQL warehouse (the spec's ``db_connection.py``), with bounded waits.

``connect()`` builds a ``databricks.sql`` connection from the settings:

- location: ``DATABRICKS_SERVER_HOSTNAME`` + ``DATABRICKS_HTTP_PATH``, or ``DATABRICKS_CONNECTION_URI`` (a full
  ``http(s)://host:port/path`` passed to the connector as ``_connection_uri``; how a local stand-in warehouse is
  reached), plus ``DATABRICKS_TLS_CA_FILE`` for a private CA;
- auth: ``DATABRICKS_ACCESS_TOKEN``. OAuth M2M for a service principal (``DATABRICKS_CLIENT_ID`` /
  ``DATABRICKS_CLIENT_SECRET``) needs the ``databricks-sdk`` package; it is used when installed, otherwise
  :class:`WarehouseConfigError` explains what to install;
- waits: the connector's defaults take ~14 minutes to give up on a dead warehouse. The retry knobs are derived from
  ``WAREHOUSE_TIMEOUT_S`` so an unreachable warehouse fails in seconds.

The connector leaks ``urllib3`` errors besides its own classes: catch :data:`WAREHOUSE_ERRORS` (or
``warehouse_errors()``), and turn any of them into an operator message with :func:`describe_error` (never the token).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from ctg_app.settings import Settings, get_settings
from ctg_app.tracking.redact import Redactor

log = logging.getLogger(__name__)

_PART = r"(?:[A-Za-z_][A-Za-z0-9_]*|`[A-Za-z_][A-Za-z0-9_\-]*`)"
_TABLE_NAME = re.compile(rf"^{_PART}\.{_PART}\.{_PART}$")


class WarehouseConfigError(ValueError):
    """The warehouse settings are missing or unusable (the message names the setting, never a secret)."""


# ----- identifiers -----------------------------------------------------------------------------------------------


def validate_table_name(name: str, *, setting: str = "TRACKING_TABLE") -> str:
    """Return ``name`` if it is a three-part ``catalog.schema.table`` identifier, else raise ``ValueError``.

    Each part is ``[A-Za-z_][A-Za-z0-9_]*``, or the same wrapped in backticks (hyphens allowed inside backticks, as
    Unity Catalog names may carry them). Nothing else ever reaches SQL text, so the name is safe to interpolate.
    """
    text = (name or "").strip()
    if not _TABLE_NAME.match(text):
        raise WarehouseConfigError(
            f"{setting} must be a three-part name catalog.schema.table (letters, digits, underscores; "
            f"a part may be `backtick-quoted`), got {text[:120]!r}"
        )
    return text


# ----- errors ----------------------------------------------------------------------------------------------------


def warehouse_errors() -> tuple[type[BaseException], ...]:
    """Exception classes a warehouse call can raise: the connector's ``Error``, urllib3's ``HTTPError``, ``OSError``."""
    import urllib3.exceptions
    from databricks.sql.exc import Error

    return (Error, urllib3.exceptions.HTTPError, OSError)


def http_status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a connector error, when it carries one (401, 403, 429, 503, ...)."""
    code = (getattr(exc, "context", None) or {}).get("http-code")
    if isinstance(code, int):
        return code
    text = str(exc)
    match = re.search(r"\b(?:HTTP|status code)[ :=]*([1-5]\d\d)\b", text, re.I)
    return int(match.group(1)) if match else None


def is_auth_error(exc: BaseException) -> bool:
    """True when the warehouse rejected the credentials (HTTP 401 / 403)."""
    from databricks.sql.exc import RequestError

    return isinstance(exc, RequestError) and http_status_of(exc) in (401, 403)


def is_conflict(exc: BaseException) -> bool:
    """True for a Delta concurrent-write conflict (``ConcurrentAppendException`` & co.): retry the statement."""
    text = str(exc)
    return ("Concurrent" in text and "Exception" in text) or "DELTA_CONCURRENT" in text


def is_rejection(exc: BaseException) -> bool:
    """True when the warehouse ran the statement and refused it (SQL, schema, permission): retrying will not help."""
    from databricks.sql.exc import ServerOperationError

    return isinstance(exc, ServerOperationError) and not is_conflict(exc)


def describe_error(exc: BaseException, settings: Settings | None = None) -> str:
    """A short operator message for a warehouse error, with every secret removed."""
    import urllib3.exceptions
    from databricks.sql.exc import RequestError, ServerOperationError

    settings = settings or get_settings()
    redact = Redactor(settings.secret_values(), max_length=300)
    status = http_status_of(exc) if isinstance(exc, RequestError) else None
    if isinstance(exc, WarehouseConfigError):
        message = str(exc)
    elif status == 401:
        message = "token rejected (HTTP 401): check DATABRICKS_ACCESS_TOKEN (or the service principal credentials)"
    elif status == 403:
        message = "access denied (HTTP 403): the identity may not use this warehouse"
    elif status in (429, 503):
        message = f"warehouse busy or starting (HTTP {status}): retry later"
    elif status == 404:
        message = "warehouse not found (HTTP 404): check DATABRICKS_HTTP_PATH"
    elif is_conflict(exc):
        message = "concurrent write conflict on the table (retried)"
    elif isinstance(exc, ServerOperationError):
        first_line = (str(exc).strip().splitlines() or [""])[0]
        message = f"warehouse rejected the statement: {first_line}"
    elif isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        reason = _network_reason(exc)
        message = f"warehouse unreachable ({reason})"
    elif isinstance(exc, RequestError):
        context = getattr(exc, "context", None) or {}
        original = str(context.get("original-exception") or exc)
        if "retry" in original.lower() or "connection" in original.lower() or "timeout" in original.lower():
            message = (f"warehouse unreachable or unavailable (no answer within "
                       f"WAREHOUSE_TIMEOUT_S={settings.warehouse_timeout_s:g} s)")
        else:
            message = f"warehouse request failed: {original.splitlines()[0] if original else type(exc).__name__}"
    else:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return redact(message)


def _network_reason(exc: BaseException) -> str:
    text = repr(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "timed out" in text or "timeout" in text:
        return "timed out"
    if "name or service not known" in text or "nodename" in text or "getaddrinfo" in text:
        return "host name not found"
    if "ssl" in text or "certificate" in text:
        return "TLS error: check DATABRICKS_TLS_CA_FILE"
    if "remotedisconnected" in text or "connection aborted" in text or "reset" in text:
        return "connection dropped"
    return type(exc).__name__


# ----- connecting ------------------------------------------------------------------------------------------------


def retry_kwargs(timeout_s: float) -> dict[str, Any]:
    """Connector retry knobs so that a dead warehouse fails after roughly ``timeout_s`` seconds, not 14 minutes.

    ``_retry_delay_max`` cannot go below 5 s in the connector, so a 503/429 is retried only when ``timeout_s`` leaves
    room for that wait; otherwise it fails at once and the flush retries later with its own backoff.
    """
    timeout_s = max(1.0, float(timeout_s))
    return {
        "_retry_stop_after_attempts_count": 3,
        # one re-send after a read timeout fits (the MERGE makes re-sends harmless); a hang fails after ~2 x timeout
        "_retry_stop_after_attempts_duration": 1.5 * timeout_s,
        "_retry_delay_min": 0.2,
        "_retry_delay_max": 5.0,
        "_socket_timeout": timeout_s,
    }


def connect_kwargs(
    settings: Settings | None = None, *, catalog: str | None = None, schema: str | None = None
) -> dict[str, Any]:
    """The keyword arguments :func:`connect` passes to ``databricks.sql.connect`` (includes the credential)."""
    settings = settings or get_settings()
    uri = settings.databricks_connection_uri
    host = settings.databricks_server_hostname
    if not (uri or host):
        raise WarehouseConfigError(
            "DATABRICKS_SERVER_HOSTNAME (or DATABRICKS_HOST, or DATABRICKS_CONNECTION_URI) is not set")
    # DATABRICKS_HTTP_PATH, else the path derived from DATABRICKS_WAREHOUSE_ID (Databricks Apps resources)
    http_path = getattr(settings, "warehouse_http_path", None) or settings.databricks_http_path
    if uri:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WarehouseConfigError("DATABRICKS_CONNECTION_URI must look like https://host:port/sql/1.0/warehouses/id")
        http_path = http_path or parts.path or "/"
        host = host or parts.hostname
    if not http_path:
        raise WarehouseConfigError("DATABRICKS_HTTP_PATH (or DATABRICKS_WAREHOUSE_ID) is not set")
    kwargs: dict[str, Any] = {
        "server_hostname": host,
        "http_path": http_path,
        "enable_telemetry": False,
        **retry_kwargs(settings.warehouse_timeout_s),
    }
    if uri:
        kwargs["_connection_uri"] = uri
    if settings.databricks_tls_ca_file:
        kwargs["_tls_trusted_ca_file"] = settings.databricks_tls_ca_file
    if catalog:
        kwargs["catalog"] = catalog
    if schema:
        kwargs["schema"] = schema
    if settings.databricks_access_token:
        kwargs["access_token"] = settings.databricks_access_token
    elif settings.databricks_client_id and settings.databricks_client_secret:
        kwargs["credentials_provider"] = _oauth_m2m_provider(settings, host)
    else:
        raise WarehouseConfigError(
            "no credentials: set DATABRICKS_ACCESS_TOKEN, or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET"
        )
    return kwargs


def _oauth_m2m_provider(settings: Settings, host: str) -> Any:
    """A ``credentials_provider`` for OAuth machine-to-machine auth, built on ``databricks-sdk`` (when installed)."""
    try:
        from databricks.sdk.core import Config, oauth_service_principal
    except ImportError:
        raise WarehouseConfigError(
            "DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET need the databricks-sdk package "
            "(pip install databricks-sdk), or set DATABRICKS_ACCESS_TOKEN instead"
        ) from None

    def provider() -> Any:  # pragma: no cover - needs a real workspace
        config = Config(
            host=f"https://{host}",
            client_id=settings.databricks_client_id,
            client_secret=settings.databricks_client_secret,
        )
        return oauth_service_principal(config)

    return provider


def connect(settings: Settings | None = None, *, catalog: str | None = None, schema: str | None = None) -> Any:
    """Open a ``databricks.sql`` connection from the settings, with bounded retries and telemetry off.

    Raises :class:`WarehouseConfigError` when settings are missing, or one of :func:`warehouse_errors` when the
    warehouse cannot be reached or rejects the credentials (give it to :func:`describe_error` for the operator).
    """
    from databricks import sql

    return sql.connect(**connect_kwargs(settings, catalog=catalog, schema=schema))
