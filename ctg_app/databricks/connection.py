"""Connections to the Databricks SQL warehouse (the spec's ``db_connection.py``), with bounded waits.

``connect()`` builds a ``databricks.sql`` connection from the settings:

- location: ``DATABRICKS_SERVER_HOSTNAME`` + ``DATABRICKS_HTTP_PATH``, or ``DATABRICKS_CONNECTION_URI`` (a full
  ``http(s)://host:port/path`` passed to the connector as ``_connection_uri``; how a local stand-in warehouse is
  reached), plus ``DATABRICKS_TLS_CA_FILE`` for a private CA;
- auth: ``DATABRICKS_ACCESS_TOKEN``, or OAuth M2M for a service principal (``DATABRICKS_CLIENT_ID`` /
  ``DATABRICKS_CLIENT_SECRET``, what Databricks Apps injects) through ``databricks-sdk``'s OAuth code against
  the workspace at ``https://DATABRICKS_SERVER_HOSTNAME`` (or the scheme://host:port of
  ``DATABRICKS_CONNECTION_URI``); see :func:`_oauth_m2m_provider`;
- waits: the connector's defaults take ~14 minutes to give up on a dead warehouse. The retry knobs are derived from
  ``WAREHOUSE_TIMEOUT_S`` so an unreachable warehouse fails in seconds.

The connector leaks ``urllib3`` errors besides its own classes: catch :data:`WAREHOUSE_ERRORS` (or
``warehouse_errors()``), and turn any of them into an operator message with :func:`describe_error` (never the token).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from ctg_app.databricks.errors import (
    CONFIGURATION,
    REJECTED,
    WarehouseConfigError,
    classify_error,
    is_missing_object,
)
from ctg_app.settings import Settings, get_settings
from ctg_app.tracking.recording.redact import Redactor

log = logging.getLogger(__name__)

_PART = r"(?:[A-Za-z_][A-Za-z0-9_]*|`[A-Za-z_][A-Za-z0-9_\-]*`)"
_TABLE_NAME = re.compile(rf"^{_PART}\.{_PART}\.{_PART}$")


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
    return classify_error(exc).http_status


def is_auth_error(exc: BaseException) -> bool:
    """True when the warehouse rejected the credentials (HTTP 401 / 403, or the service principal was refused)."""
    verdict = classify_error(exc)
    return verdict.kind == CONFIGURATION and verdict.is_auth


def is_conflict(exc: BaseException) -> bool:
    """True for a Delta concurrent-write conflict (``ConcurrentAppendException`` & co.): retry the statement."""
    return classify_error(exc).is_conflict


def is_missing_table(exc: BaseException) -> bool:
    """True when the error (or its cause) says the table, schema or catalog does not exist, by its error condition
    or SQLSTATE (see :func:`ctg_app.databricks.errors.is_missing_object`)."""
    return any(is_missing_object(e) for e in (exc, exc.__cause__) if e is not None)


def is_rejection(exc: BaseException) -> bool:
    """True when the warehouse refused the data for good (see :mod:`ctg_app.databricks.errors`): retrying will not
    help, only leaving the offending events out."""
    return classify_error(exc).kind == REJECTED


def describe_error(exc: BaseException, settings: Settings | None = None) -> str:
    """A short operator message for a warehouse error, with every secret removed."""
    import urllib3.exceptions
    from databricks.sql.exc import RequestError, ServerOperationError

    settings = settings or get_settings()
    redact = Redactor(settings.secret_values(), max_length=300)
    status = http_status_of(exc) if isinstance(exc, RequestError) else None
    oauth_error = _oauth_error(exc)
    if isinstance(exc, WarehouseConfigError):
        message = str(exc)
    elif isinstance(oauth_error, ServicePrincipalRejected):  # from the token source, maybe wrapped by the connector
        message = str(oauth_error)
    elif oauth_error is not None:
        message = f"warehouse unreachable: {oauth_error}"
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
    """The keyword arguments :func:`connect` passes to ``databricks.sql.connect`` (includes the credential).

    With a service principal this runs the OAuth discovery (once per process and client, see
    :func:`_oauth_m2m_provider`)."""
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


# ----- OAuth machine-to-machine (service principal) ---------------------------------------------------------------


class ServicePrincipalRejected(PermissionError):
    """The workspace's token endpoint refused the service principal (``invalid_client`` & co.; never the secret)."""


class OAuthUnavailable(ConnectionError):
    """OIDC discovery or the token endpoint could not be reached or answered nonsense (try again later)."""


_REJECTION_CODES = ("invalid_client", "unauthorized_client", "invalid_grant", "access_denied", "invalid_scope",
                    "invalid_request")
_token_sources: dict[tuple[str, str, str], Any] = {}
_token_sources_lock = threading.Lock()


def oauth_base_url(settings: Settings, host: str | None = None) -> str:
    """``scheme://host[:port]`` of the workspace for OAuth: from ``DATABRICKS_CONNECTION_URI`` when set (the local
    fake warehouse: ``http://127.0.0.1:PORT``), else ``https://{DATABRICKS_SERVER_HOSTNAME}``."""
    uri = settings.databricks_connection_uri
    if uri:
        parts = urlsplit(uri)
        name = parts.hostname or ""
        name = f"[{name}]" if ":" in name else name
        return f"{parts.scheme}://{name}" + (f":{parts.port}" if parts.port else "")
    host = (host or settings.databricks_server_hostname or "").strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def _oauth_m2m_provider(settings: Settings, host: str) -> Any:
    """A connector ``credentials_provider`` for a service principal, built on ``databricks-sdk``'s OAuth code.

    OIDC discovery (``{base}/oidc/.well-known/oauth-authorization-server``) with the SDK's
    ``oauth.get_workspace_endpoints``, then the SDK's ``oauth.ClientCredentials`` (the token source its own
    ``oauth-m2m`` auth uses: ``client_credentials`` grant, HTTP Basic client auth, scope ``all-apis``; cached until
    40 s before expiry). ``databricks.sdk.core.Config`` is deliberately not used: it reads ``DATABRICKS_*``
    variables and ``~/.databrickscfg`` profiles (a ``DATABRICKS_TOKEN`` next to the client secret makes it fail with
    "more than one authorization method"), probes ``/.well-known/databricks-config`` and fetches the discovery
    document with a client that retries connection errors for 300 s, which would defeat ``WAREHOUSE_TIMEOUT_S``.
    One token source per (workspace, client) is kept for the process, so reconnects reuse a valid token.

    Discovery runs here (once per process and client); the token is fetched on the first request. Errors:
    :class:`WarehouseConfigError` (no discovery document), :class:`OAuthUnavailable` (discovery or token endpoint
    unreachable), :class:`ServicePrincipalRejected` (wrong id/secret; the connector wraps it in a ``RequestError``).
    """
    try:
        from databricks.sdk import oauth
        from databricks.sdk._base_client import _BaseClient
        from databricks.sdk.errors import NotFound
    except ImportError:
        raise WarehouseConfigError(
            "DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET need the databricks-sdk package "
            "(pip install databricks-sdk), or set DATABRICKS_ACCESS_TOKEN instead"
        ) from None

    base = oauth_base_url(settings, host)
    client_id = settings.databricks_client_id or ""
    client_secret = settings.databricks_client_secret or ""
    # discovery retries connection errors (sleeping 1 s, 2 s, ...) within this budget, then gives up
    timeout = max(1.0, float(settings.warehouse_timeout_s) / 2)
    key = (base, client_id, hashlib.sha256(client_secret.encode()).hexdigest())

    def token_source() -> Any:
        with _token_sources_lock:
            source = _token_sources.get(key)
        if source is not None:
            return source
        client = _BaseClient(retry_timeout_seconds=timeout, http_timeout_seconds=timeout)
        try:
            endpoints = oauth.get_workspace_endpoints(base, client=client)
        except Exception as exc:  # noqa: BLE001 - the SDK raises DatabricksError, TimeoutError, requests errors
            if isinstance(exc, NotFound):
                raise WarehouseConfigError(
                    f"no OAuth discovery document at {base}/oidc/.well-known/oauth-authorization-server: check "
                    "DATABRICKS_SERVER_HOSTNAME / DATABRICKS_CONNECTION_URI, or set DATABRICKS_ACCESS_TOKEN instead"
                ) from None
            raise OAuthUnavailable(f"OAuth discovery at {base} failed: {_short(exc)}") from exc
        if not endpoints or not endpoints.token_endpoint:
            raise OAuthUnavailable(f"OAuth discovery at {base} gave no token_endpoint")
        source = oauth.ClientCredentials(
            client_id=client_id, client_secret=client_secret, token_url=endpoints.token_endpoint,
            scopes="all-apis", use_header=True, disable_async=True)
        with _token_sources_lock:
            return _token_sources.setdefault(key, source)

    source = token_source()  # discovery now, so a bad host fails here rather than inside the connector

    def provider() -> Any:
        def headers() -> dict[str, str]:
            try:
                token = source.token()
            except Exception as exc:  # noqa: BLE001 - ValueError("invalid_client: ..."), requests errors, ...
                text = _short(exc)
                if isinstance(exc, ValueError) and text.split(":", 1)[0].strip() in _REJECTION_CODES:
                    raise ServicePrincipalRejected(
                        f"service principal rejected: check DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET "
                        f"(OAuth {text.split(':', 1)[0].strip()})") from None
                raise OAuthUnavailable(f"OAuth token request failed: {text}") from None
            return {"Authorization": f"{token.token_type or 'Bearer'} {token.access_token}"}

        return headers

    return provider


def _short(exc: BaseException) -> str:
    """First line of an exception's text, at most 200 characters (the SDK's texts carry no secret; redacted later)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:200]


def _oauth_error(exc: BaseException) -> BaseException | None:
    """The :class:`ServicePrincipalRejected` / :class:`OAuthUnavailable` behind ``exc`` (the connector wraps it)."""
    todo, seen = [exc], 0
    while todo and seen < 12:
        current = todo.pop(0)
        seen += 1
        if isinstance(current, (ServicePrincipalRejected, OAuthUnavailable)):
            return current
        context = getattr(current, "context", None)
        nested = [context.get("original-exception")] if isinstance(context, dict) else []
        todo += [e for e in (*nested, *current.args, current.__cause__) if isinstance(e, BaseException)]
    return None


def connect(settings: Settings | None = None, *, catalog: str | None = None, schema: str | None = None) -> Any:
    """Open a ``databricks.sql`` connection from the settings, with bounded retries and telemetry off.

    Raises :class:`WarehouseConfigError` when settings are missing, or one of :func:`warehouse_errors` when the
    warehouse cannot be reached or rejects the credentials (give it to :func:`describe_error` for the operator).
    """
    from databricks import sql

    return sql.connect(**connect_kwargs(settings, catalog=catalog, schema=schema))
