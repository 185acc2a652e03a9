"""Connections to the Databricks SQL warehouse (the spec's ``db_connection.py``), with bounded waits.

``connect()`` builds a ``databricks.sql`` connection from the settings:

- location: ``DATABRICKS_SERVER_HOSTNAME`` + ``DATABRICKS_HTTP_PATH``, or ``DATABRICKS_CONNECTION_URI`` (a full
  ``http(s)://host:port/path`` passed to the connector as ``_connection_uri``; how a local stand-in warehouse is
  reached), plus ``DATABRICKS_TLS_CA_FILE`` for a private CA;
- auth: a user's own token when the caller passes one (``user_token``: on-behalf-of-user chat queries, see
  :mod:`ctg_app.ui.user_token`), else ``DATABRICKS_ACCESS_TOKEN``, else OAuth M2M for a service principal
  (``DATABRICKS_CLIENT_ID`` / ``DATABRICKS_CLIENT_SECRET``, what Databricks Apps injects) through ``databricks-sdk``'s
  public API (``Config(auth_type="oauth-m2m")``) against the workspace at ``https://DATABRICKS_SERVER_HOSTNAME`` (or
  the scheme://host:port of ``DATABRICKS_CONNECTION_URI``); see :func:`_oauth_m2m_provider`; else Databricks unified
  auth for a ``DATABRICKS_CONFIG_PROFILE`` (``--profile``) of ``~/.databrickscfg`` (``DATABRICKS_CONFIG_FILE``):
  whatever the profile holds (token, service principal, U2M through the Databricks CLI), see :func:`profile_config`;
- session: ``TIMEZONE`` is pinned to ``UTC`` on every connection (:data:`SESSION_CONFIGURATION`), so ``DATE(ts)``
  gives the same UTC days as the spool whatever the warehouse's own time zone is;
- attribution: ``user_agent_entry="ctg-app/<version>"``, so the warehouse's query history names the app;
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

from ctg_app.error_facts import is_missing_object
from ctg_app.warehouse.errors import CONFIGURATION, REJECTED, WarehouseConfigError, classify_error
from ctg_app.settings import Settings, get_settings
from ctg_app.redact import Redactor

log = logging.getLogger(__name__)

#: Session parameters of every connection: UTC days, whatever the warehouse's TIMEZONE configuration says.
SESSION_CONFIGURATION: dict[str, str] = {"TIMEZONE": "UTC"}

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
    or SQLSTATE (see :func:`ctg_app.error_facts.is_missing_object`)."""
    return any(is_missing_object(e) for e in (exc, exc.__cause__) if e is not None)


def is_rejection(exc: BaseException) -> bool:
    """True when the warehouse refused the data for good (see :mod:`ctg_app.warehouse.errors`): retrying will not
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
    settings: Settings | None = None, *, catalog: str | None = None, schema: str | None = None,
    user_token: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments :func:`connect` passes to ``databricks.sql.connect`` (includes the credential).

    ``user_token``: run as that user (on-behalf-of-user; the token is used as given, never logged). With a service
    principal this runs the OAuth discovery (once per process and client, see :func:`_oauth_m2m_provider`); with a
    profile the SDK's unified auth (:func:`profile_config`). Every connection pins ``TIMEZONE`` to UTC."""
    settings = settings or get_settings()
    profile = None
    if not (user_token or settings.databricks_access_token
            or (settings.databricks_client_id and settings.databricks_client_secret)) and (
            settings.databricks_config_profile or settings.databricks_runtime_version):
        profile = profile_config(settings)
        settings = _with_profile_location(settings, profile)
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
        "user_agent_entry": user_agent_entry(),
        "session_configuration": dict(SESSION_CONFIGURATION),
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
    if user_token:
        kwargs["access_token"] = user_token
    elif settings.databricks_access_token:
        kwargs["access_token"] = settings.databricks_access_token
    elif settings.databricks_client_id and settings.databricks_client_secret:
        kwargs["credentials_provider"] = _oauth_m2m_provider(settings, host)
    elif profile is not None:
        kwargs["credentials_provider"] = _config_provider(profile)
    else:
        raise WarehouseConfigError(
            "no credentials: set DATABRICKS_ACCESS_TOKEN, or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, "
            "or choose a ~/.databrickscfg profile (--profile NAME or DATABRICKS_CONFIG_PROFILE)"
        )
    return kwargs


# ----- Databricks unified auth (a ~/.databrickscfg profile) ---------------------------------------------------------


def profile_config(settings: Settings) -> Any:
    """The ``databricks-sdk`` ``Config`` of the profile ``DATABRICKS_CONFIG_PROFILE`` (``--profile``), read from
    ``DATABRICKS_CONFIG_FILE`` or ``~/.databrickscfg``: its host, ``warehouse_id`` and credentials, resolved by the
    SDK's unified auth (a token, a service principal, or U2M through ``databricks auth login``'s token cache). On
    Databricks compute (``DATABRICKS_RUNTIME_VERSION`` set, e.g. the flush job) without a profile: the SDK's default
    chain, i.e. the job's run-as identity.

    Raises :class:`WarehouseConfigError` when the profile is missing or cannot authenticate (never with a secret)."""
    try:
        from databricks.sdk.core import Config
    except ImportError:
        raise WarehouseConfigError("a --profile needs the databricks-sdk package (pip install databricks-sdk)") from None
    name = settings.databricks_config_profile or None
    timeout = max(1, int(round(settings.warehouse_timeout_s)))
    try:
        return Config(profile=name, http_timeout_seconds=timeout, retry_timeout_seconds=timeout,
                      product="ctg-app", product_version=app_version())
    except Exception as exc:  # noqa: BLE001 - ValueError("resolve: ... has no NAME profile configured") & co.
        what = f"Databricks profile {name!r}" if name else "Databricks default authentication"
        raise WarehouseConfigError(f"{what} cannot be used: {_short(exc, 300)}") from None


def _with_profile_location(settings: Settings, config: Any) -> Settings:
    """The settings with the workspace (and warehouse, when the profile names one) taken from the profile, where the
    environment does not set them. A host with a port or plain http (a local stand-in) becomes the connection URI."""
    changes: dict[str, Any] = {}
    http_path = settings.warehouse_http_path or (
        f"/sql/1.0/warehouses/{config.warehouse_id}" if getattr(config, "warehouse_id", None) else None)
    if http_path and not settings.databricks_http_path:
        changes["databricks_http_path"] = http_path
    if not (settings.databricks_connection_uri or settings.databricks_server_hostname) and config.host:
        parts = urlsplit(config.host)
        changes["databricks_server_hostname"] = parts.hostname
        if parts.scheme == "http" or parts.port:
            changes["databricks_connection_uri"] = config.host.rstrip("/") + (http_path or "")
    return settings.replace(**changes) if changes else settings


def _config_provider(config: Any) -> Any:
    """A connector ``credentials_provider`` over an SDK ``Config`` (``Config.authenticate()`` gives the header)."""

    def provider() -> Any:
        def headers() -> dict[str, str]:
            try:
                return config.authenticate()
            except Exception as exc:  # noqa: BLE001 - the SDK's own errors, never carrying the secret
                raise OAuthUnavailable(f"Databricks profile authentication failed: {_short(exc)}") from None

        return headers

    return provider


# ----- OAuth machine-to-machine (service principal) ---------------------------------------------------------------


class ServicePrincipalRejected(PermissionError):
    """The workspace's token endpoint refused the service principal (``invalid_client`` & co.; never the secret)."""


class OAuthUnavailable(ConnectionError):
    """OIDC discovery or the token endpoint could not be reached or answered nonsense (try again later)."""


_REJECTION_CODES = ("invalid_client", "unauthorized_client", "invalid_grant", "access_denied", "invalid_scope",
                    "invalid_request")
_configs_lock = threading.Lock()


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
    """A connector ``credentials_provider`` for a service principal, built on ``databricks-sdk``'s public API.

    ``databricks.sdk.core.Config(auth_type="oauth-m2m", ...)`` runs the SDK's own ``oauth_service_principal``
    strategy (OIDC discovery at ``{base}/oidc/.well-known/oauth-authorization-server``, then the
    ``client_credentials`` grant with scope ``all-apis``, token cached until shortly before expiry) and
    ``Config.authenticate()`` gives the ``Authorization`` header per request. Everything that decides the login is
    passed explicitly, so unrelated ``DATABRICKS_*`` variables (a CLI token, ``DATABRICKS_DISCOVERY_URL``) or a
    ``~/.databrickscfg`` profile cannot change it: the explicit ``auth_type`` makes a stray token harmless.

    Some SDK releases fetch the discovery document with a client that retries connection errors for 300 s, beyond
    what ``Config`` lets a caller set; the construction therefore runs in a worker thread and is waited for at most
    ``WAREHOUSE_TIMEOUT_S`` (one construction in flight per workspace and client, later callers wait for the same;
    one that timed out is left to finish on its own and the next caller starts afresh).
    One ``Config`` per (workspace, client) is kept for the process, so reconnects reuse a valid token.

    Errors: :class:`WarehouseConfigError` (no discovery document), :class:`OAuthUnavailable` (discovery or token
    endpoint unreachable), :class:`ServicePrincipalRejected` (wrong id/secret; the connector wraps it in a
    ``RequestError``).
    """
    try:
        from databricks.sdk.core import Config
    except ImportError:
        raise WarehouseConfigError(
            "DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET need the databricks-sdk package "
            "(pip install databricks-sdk), or set DATABRICKS_ACCESS_TOKEN instead"
        ) from None

    base = oauth_base_url(settings, host)
    client_id = settings.databricks_client_id or ""
    client_secret = settings.databricks_client_secret or ""
    timeout = max(1.0, float(settings.warehouse_timeout_s))
    key = (base, client_id, hashlib.sha256(client_secret.encode()).hexdigest())

    def build() -> Any:
        return Config(
            host=base, client_id=client_id, client_secret=client_secret, auth_type="oauth-m2m",
            # attributes an SDK release does not know are ignored by its Config
            discovery_url=f"{base}/oidc/.well-known/oauth-authorization-server",
            http_timeout_seconds=timeout, retry_timeout_seconds=int(timeout), disable_async_token_refresh=True,
            product="ctg-app", product_version=app_version(),
        )

    config = _shared_config(key, build, timeout, base)

    def provider() -> Any:
        def headers() -> dict[str, str]:
            try:
                return config.authenticate()
            except Exception as exc:  # noqa: BLE001 - ValueError("invalid_client: ..."), requests errors, ...
                raise _token_error(exc) from None

        return headers

    return provider


class _PendingConfig:
    """One SDK ``Config`` construction in flight (or done): its result or error, and an event to wait on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.config: Any = None
        self.error: BaseException | None = None


_configs: dict[tuple[str, str, str], _PendingConfig] = {}


def _shared_config(key: tuple[str, str, str], build: Any, timeout: float, base: str) -> Any:
    """The process's SDK ``Config`` for ``key``: built once in a worker thread, waited for at most ``timeout``."""
    with _configs_lock:
        pending = _configs.get(key)
        start = pending is None or (pending.done.is_set() and pending.config is None)
        if start:
            pending = _configs[key] = _PendingConfig()
    if start:
        def run() -> None:
            try:
                pending.config = build()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                pending.error = exc
            finally:
                pending.done.set()

        threading.Thread(target=run, name="ctg-oauth-discovery", daemon=True).start()
    if not pending.done.wait(timeout):
        with _configs_lock:  # the next caller starts afresh; this worker ends within the SDK's own retry budget
            if _configs.get(key) is pending:
                del _configs[key]
        raise OAuthUnavailable(f"OAuth discovery at {base} failed: no answer within {timeout:g} s")
    if pending.config is None:
        raise _discovery_error(pending.error, base)
    return pending.config


def _discovery_error(exc: BaseException | None, base: str) -> Exception:
    """Map what ``Config(...)`` raised to :class:`WarehouseConfigError` / :class:`OAuthUnavailable` (no secret)."""
    chain, current = [], exc
    while current is not None and len(chain) < 12:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in chain).lower()
    # the SDK's NotFound is an OSError (DatabricksError subclasses IOError): look for the 404 before the network
    not_found = any(type(e).__name__ == "NotFound" for e in chain) or "404 not found" in text
    network = any(isinstance(e, (OSError, TimeoutError)) or type(e).__module__.startswith(("requests", "urllib3"))
                  for e in chain)
    if not_found or (not network and ("not configured" in text or "cannot configure" in text)):
        return WarehouseConfigError(
            f"no OAuth discovery document at {base}/oidc/.well-known/oauth-authorization-server: check "
            "DATABRICKS_SERVER_HOSTNAME / DATABRICKS_CONNECTION_URI, or set DATABRICKS_ACCESS_TOKEN instead")
    return OAuthUnavailable(f"OAuth discovery at {base} failed: {_short(exc) if exc else 'no answer'}")


def _token_error(exc: BaseException) -> Exception:
    """Map a failed token request to :class:`ServicePrincipalRejected` / :class:`OAuthUnavailable` (no secret)."""
    text = _short(exc)
    code = text.split(":", 1)[0].strip()
    if code in _REJECTION_CODES or any(f"{c}:" in text for c in _REJECTION_CODES):
        code = next((c for c in _REJECTION_CODES if c in text), code)
        return ServicePrincipalRejected(
            f"service principal rejected: check DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET (OAuth {code})")
    return OAuthUnavailable(f"OAuth token request failed: {text}")


def app_version() -> str:
    """The installed ctg-app version (``0+unknown`` when running from an uninstalled checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ctg-app")
    except PackageNotFoundError:
        return "0+unknown"


def user_agent_entry() -> str:
    """What every warehouse connection adds to its User-Agent, so the query history attributes it: ``ctg-app/<v>``."""
    return f"ctg-app/{app_version()}"


def _short(exc: BaseException, limit: int = 200) -> str:
    """First line of an exception's text, at most ``limit`` characters (the SDK's texts carry no secret; redacted
    later)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:limit]


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


def connect(settings: Settings | None = None, *, catalog: str | None = None, schema: str | None = None,
            user_token: str | None = None) -> Any:
    """Open a ``databricks.sql`` connection from the settings, with bounded retries and telemetry off.

    Raises :class:`WarehouseConfigError` when settings are missing, or one of :func:`warehouse_errors` when the
    warehouse cannot be reached or rejects the credentials (give it to :func:`describe_error` for the operator).
    """
    from databricks import sql

    return sql.connect(**connect_kwargs(settings, catalog=catalog, schema=schema, user_token=user_token))
