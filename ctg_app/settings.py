"""One settings object for the whole app, read from environment variables and, under Streamlit, ``st.secrets``.

Every setting has exactly one name, used both as the environment variable and as the top-level key in
``.streamlit/secrets.toml``. Environment variables win over secrets. The README lists every setting.

``get_settings()`` returns a cached, immutable :class:`Settings`; tests and the CLI call ``reload_settings()``
after changing the environment.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SPEC_APP_NAME = "elevio-ctg-chatbot-vanna"
SPEC_DEFAULT_USER = "ctg_chatbot_user@eleviogroup.com"
SPEC_TABLE = "elevio_group___rag_pilot.rag_core_blocks.central_app_usage"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


#: ``CTG_QUERY_IDENTITY`` values: who runs chat SQL on Databricks.
QUERY_IDENTITIES = ("auto", "user", "service-principal")

#: The smallest size cap accepted: below this the cap would drop nearly every event it is meant to protect.
MIN_SPOOL_MAX_MB = 1
DATE_ANCHOR = re.compile(r"latest-data|today|\d{4}-\d{2}-\d{2}")


#: Settings whose values are written into every usage event (and so shipped to the central table).
EVENT_FIELD_SETTINGS = ("app_name", "default_user")


class SettingsError(ValueError):
    """A setting has a value that cannot be used (the message names the setting, never a secret's value)."""


def default_state_dir() -> Path:
    """Per-user directory for local state (the spool): ``$XDG_STATE_HOME/ctg-app`` or ``~/.local/state/ctg-app``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ctg-app"


def _setting(env: str, default: Any = None, *, secret: bool = False, doc: str = "") -> Any:
    return field(default=default, repr=not secret, metadata={"env": env, "secret": secret, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """All configuration. Field metadata carries the variable name and whether the value is a secret."""

    # --- tracking (request path) ---
    app_name: str = _setting("TRACKING_APP_NAME", SPEC_APP_NAME, doc="app_name written with every event")
    spool_path: Path = _setting(
        "TRACKING_SPOOL_PATH", None, doc="SQLite spool file (default: per-user state dir /usage-spool.sqlite3)"
    )
    spool_synchronous: str = _setting(
        "TRACKING_SPOOL_SYNCHRONOUS", "NORMAL", doc="NORMAL (survives app crashes) or FULL (also power loss)"
    )
    spool_busy_timeout_ms: int = _setting(
        "TRACKING_SPOOL_BUSY_TIMEOUT_MS", 5000, doc="flush/CLI wait for a spool lock (ms)"
    )
    request_lock_wait_ms: int = _setting(
        "TRACKING_REQUEST_LOCK_WAIT_MS", 100, doc="a tracked call's wait for a spool lock (ms), then a counted drop"
    )
    tracking_enabled: bool = _setting("TRACKING_ENABLED", True, doc="false turns recording off entirely")
    default_user: str = _setting("TRACKING_DEFAULT_USER", SPEC_DEFAULT_USER, doc="user when no identity is known")
    trusted_user_header: str | None = _setting(
        "TRUSTED_USER_HEADER", None, doc="proxy header trusted for identity, e.g. X-Forwarded-Email (off when unset)"
    )
    debug_logging: bool = _setting("DEBUG_LOGGING", False, doc="log every event at DEBUG")

    # --- warehouse (shipping) ---
    databricks_server_hostname: str | None = _setting("DATABRICKS_SERVER_HOSTNAME", None, doc="SQL warehouse host")
    databricks_host: str | None = _setting(
        "DATABRICKS_HOST", None, doc="workspace URL as Databricks Apps sets it (used when the hostname is unset)"
    )
    databricks_http_path: str | None = _setting("DATABRICKS_HTTP_PATH", None, doc="SQL warehouse HTTP path")
    databricks_warehouse_id: str | None = _setting(
        "DATABRICKS_WAREHOUSE_ID", None, doc="SQL warehouse id (as a Databricks Apps resource gives it)"
    )
    databricks_access_token: str | None = _setting(
        "DATABRICKS_ACCESS_TOKEN", None, secret=True, doc="personal access token"
    )
    databricks_client_id: str | None = _setting("DATABRICKS_CLIENT_ID", None, doc="service principal (OAuth M2M)")
    databricks_client_secret: str | None = _setting(
        "DATABRICKS_CLIENT_SECRET", None, secret=True, doc="service principal secret (OAuth M2M)"
    )
    databricks_connection_uri: str | None = _setting(
        "DATABRICKS_CONNECTION_URI",
        None,
        doc="full http(s)://host:port/path override, e.g. the local fake warehouse",
    )
    databricks_tls_ca_file: str | None = _setting("DATABRICKS_TLS_CA_FILE", None, doc="CA bundle to trust")
    databricks_config_profile: str | None = _setting(
        "DATABRICKS_CONFIG_PROFILE", None,
        doc="~/.databrickscfg profile (or DATABRICKS_CONFIG_FILE) for unified auth when no token/client is set; "
            "the CLIs' --profile",
    )
    databricks_runtime_version: str | None = _setting(
        "DATABRICKS_RUNTIME_VERSION", None,
        doc="set by Databricks compute (a job): without other credentials the SDK's default auth (the run-as identity)",
    )
    tracking_table: str = _setting("TRACKING_TABLE", SPEC_TABLE, doc="central table, catalog.schema.table")
    warehouse_timeout_s: float = _setting(
        "WAREHOUSE_TIMEOUT_S", 10.0, doc="give up on an unreachable warehouse after about this long"
    )
    warehouse_start_timeout_s: float = _setting(
        "WAREHOUSE_START_TIMEOUT_S", 300.0, doc="how long a chat query waits for a stopped SQL warehouse to start"
    )
    flush_batch_size: int = _setting("FLUSH_BATCH_SIZE", 4000, doc="events per MERGE statement")
    spool_retention_days: int = _setting("SPOOL_RETENTION_DAYS", 7, doc="purge delivered events after N days")
    spool_max_mb: int = _setting("SPOOL_MAX_MB", 512, doc="spool size cap in MB (policy: docs/flush-spool.md)")
    background_flush: bool = _setting("BACKGROUND_FLUSH", False, doc="run a flusher thread inside the app")
    background_flush_interval_s: float = _setting("BACKGROUND_FLUSH_INTERVAL_S", 30.0, doc="flusher interval")
    drain_timeout_s: float = _setting(
        "TRACKING_DRAIN_TIMEOUT_S", 10.0, doc="on shutdown, flush (then park) for at most this long (Apps allow 15 s)"
    )
    park_volume: str | None = _setting(
        "TRACKING_PARK_VOLUME", None, doc="off-box park tier: /Volumes/<catalog>/<schema>/<volume>/<dir>/ (off when unset)"
    )
    park_after_s: float = _setting(
        "TRACKING_PARK_AFTER_S", 300.0, doc="park pending events once the warehouse was unreachable this long"
    )

    # --- chatbot ---
    llm_provider: str = _setting(
        "LLM_PROVIDER", "offline", doc="offline, openai, azure_openai, anthropic or ollama"
    )
    llm_model: str | None = _setting("LLM_MODEL", None, doc="model / deployment name for the LLM provider")
    openai_api_key: str | None = _setting("OPENAI_API_KEY", None, secret=True, doc="OpenAI / Azure OpenAI key")
    openai_base_url: str | None = _setting(
        "OPENAI_BASE_URL", None, doc="OpenAI-compatible endpoint, e.g. a proxy or local server (default: api.openai.com)"
    )
    azure_openai_endpoint: str | None = _setting("AZURE_OPENAI_ENDPOINT", None, doc="Azure OpenAI endpoint")
    azure_openai_api_version: str = _setting("AZURE_OPENAI_API_VERSION", "2024-10-21", doc="Azure OpenAI API version")
    anthropic_api_key: str | None = _setting("ANTHROPIC_API_KEY", None, secret=True, doc="Anthropic key")
    ollama_host: str = _setting("OLLAMA_HOST", "http://127.0.0.1:11434", doc="Ollama server")
    data_source: str = _setting("CTG_DATA_SOURCE", "sample", doc="sample (embedded SQLite) or databricks")
    sample_db_path: Path = _setting(
        "CTG_SAMPLE_DB_PATH", None, doc="sample database file (default: per-user state dir /ctg-sample.sqlite3)"
    )
    data_schema: str | None = _setting(
        "CTG_DATA_SCHEMA", None, doc="catalog.schema holding the CTG tables when CTG_DATA_SOURCE=databricks"
    )
    data_access_token: str | None = _setting(
        "CTG_DATA_ACCESS_TOKEN", None, secret=True,
        doc="read-only token for chat queries on Databricks (default: the DATABRICKS_* credentials)",
    )
    data_client_id: str | None = _setting(
        "CTG_DATA_CLIENT_ID", None, doc="read-only service principal for chat queries on Databricks (OAuth M2M)"
    )
    data_client_secret: str | None = _setting(
        "CTG_DATA_CLIENT_SECRET", None, secret=True, doc="secret of CTG_DATA_CLIENT_ID"
    )
    query_identity: str = _setting(
        "CTG_QUERY_IDENTITY", "auto",
        doc="who runs chat SQL on Databricks: user (the X-Forwarded-Access-Token, required), service-principal, "
            "or auto (the user's token when the request has one, else the service principal)",
    )
    chat_query_timeout_s: float = _setting(
        "CHAT_QUERY_TIMEOUT_S", 30.0, doc="a chat query running longer than this is stopped"
    )
    chat_max_rows: int = _setting("CHAT_MAX_ROWS", 10000, doc="chat results are cut to this many rows (user is told)")
    chat_max_value_bytes: int = _setting(
        "CHAT_MAX_VALUE_BYTES", 262_144, doc="a chat query making a bigger single text/blob value is stopped (bytes)"
    )
    chat_max_result_bytes: int = _setting(
        "CHAT_MAX_RESULT_BYTES", 33_554_432, doc="a chat result holding more bytes than this is stopped (user is told)"
    )
    llm_timeout_s: float = _setting("LLM_TIMEOUT_S", 60.0, doc="give up on one LLM request after this long")
    llm_max_retries: int = _setting("LLM_MAX_RETRIES", 2, doc="retries of a failed LLM request (429, 5xx, timeout)")
    date_anchor: str = _setting(
        "CTG_DATE_ANCHOR", "latest-data",
        doc="what relative dates (last year, this quarter, YTD) count from: latest-data, today or YYYY-MM-DD",
    )
    admin_emails: tuple[str, ...] = _setting(
        "ADMIN_EMAILS", (), doc="comma-separated emails allowed to see the Usage analytics page"
    )

    def __post_init__(self) -> None:
        if self.spool_path is None:
            object.__setattr__(self, "spool_path", default_state_dir() / "usage-spool.sqlite3")
        if self.sample_db_path is None:
            object.__setattr__(self, "sample_db_path", default_state_dir() / "ctg-sample.sqlite3")
        if not self.databricks_server_hostname and self.databricks_host:
            host = self.databricks_host.removeprefix("https://").removeprefix("http://").rstrip("/")
            object.__setattr__(self, "databricks_server_hostname", host)
        if not self.chat_query_timeout_s > 0 or self.chat_max_rows < 1:
            raise SettingsError("CHAT_QUERY_TIMEOUT_S must be > 0 and CHAT_MAX_ROWS >= 1")
        if self.chat_max_value_bytes < 1024 or self.chat_max_result_bytes < self.chat_max_value_bytes:
            raise SettingsError("CHAT_MAX_VALUE_BYTES must be >= 1024 and CHAT_MAX_RESULT_BYTES >= CHAT_MAX_VALUE_BYTES")
        if not DATE_ANCHOR.fullmatch(str(self.date_anchor)):
            raise SettingsError(f"CTG_DATE_ANCHOR must be latest-data, today or YYYY-MM-DD, got {self.date_anchor!r}")
        if not self.llm_timeout_s > 0 or self.llm_max_retries < 0:
            raise SettingsError("LLM_TIMEOUT_S must be > 0 and LLM_MAX_RETRIES >= 0")
        if self.request_lock_wait_ms < 0 or self.spool_busy_timeout_ms < 0:
            raise SettingsError("TRACKING_REQUEST_LOCK_WAIT_MS and TRACKING_SPOOL_BUSY_TIMEOUT_MS must be >= 0")
        object.__setattr__(self, "query_identity", str(self.query_identity).strip().lower())
        if self.query_identity not in QUERY_IDENTITIES:
            raise SettingsError(f"CTG_QUERY_IDENTITY must be one of {', '.join(QUERY_IDENTITIES)}, "
                                f"got {self.query_identity[:40]!r}")
        if self.spool_synchronous not in ("NORMAL", "FULL"):
            raise SettingsError("TRACKING_SPOOL_SYNCHRONOUS must be NORMAL or FULL")
        self._refuse_secrets_in_event_fields()
        if self.spool_max_mb < MIN_SPOOL_MAX_MB:
            raise SettingsError(f"SPOOL_MAX_MB must be at least {MIN_SPOOL_MAX_MB} (MB; an empty spool needs about "
                                f"0.1 MB), got {self.spool_max_mb}")

    def _refuse_secrets_in_event_fields(self) -> None:
        """``TRACKING_APP_NAME`` and ``TRACKING_DEFAULT_USER`` are written into every event and shipped: refuse a
        value holding a configured secret or a token shape (the error names the setting, never the value)."""
        from ctg_app.redact import contains_secret

        for name in EVENT_FIELD_SETTINGS:
            f = next(f for f in dataclasses.fields(self) if f.name == name)
            if contains_secret(str(getattr(self, name) or ""), self.secret_values()):
                raise SettingsError(f"{f.metadata['env']} holds a secret or a token-shaped value; it would be written "
                                    "into every usage event: set a plain name")

    @property
    def warehouse_http_path(self) -> str | None:
        """``DATABRICKS_HTTP_PATH``, or the path derived from ``DATABRICKS_WAREHOUSE_ID``."""
        if self.databricks_http_path:
            return self.databricks_http_path
        if self.databricks_warehouse_id:
            return f"/sql/1.0/warehouses/{self.databricks_warehouse_id}"
        return None

    @property
    def warehouse_configured(self) -> bool:
        """True when enough is set to reach a Databricks SQL warehouse."""
        has_location = bool(self.databricks_connection_uri or self.databricks_server_hostname)
        if self.databricks_config_profile or self.databricks_runtime_version:  # unified auth decides on connect
            return True
        has_auth = bool(self.databricks_access_token or (self.databricks_client_id and self.databricks_client_secret))
        return has_location and bool(self.warehouse_http_path or self.databricks_connection_uri) and has_auth

    def secret_values(self) -> tuple[str, ...]:
        """The configured secret values, so redaction can remove them verbatim wherever they appear."""
        values = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                values.append(str(value))
        return tuple(values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (values already typed)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_sources(cls, env: Mapping[str, str], secrets: Mapping[str, Any] | None = None) -> Settings:
        """Build settings from an environment mapping and an optional secrets mapping (env wins)."""
        secrets = secrets or {}
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            raw = env.get(name)
            if raw is None:
                raw = secrets.get(name)
            if raw is None:
                continue
            values[f.name] = _parse(name, f.type, raw)
        return cls(**values)


def _parse(name: str, type_name: Any, raw: Any) -> Any:
    type_name = str(type_name)
    text = str(raw).strip()
    try:
        if type_name == "bool":
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected true/false")
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if type_name == "Path":
            return Path(text).expanduser()
        if type_name.startswith("tuple"):
            return tuple(part.strip().lower() for part in text.split(",") if part.strip())
        if type_name == "str | None":
            return text or None
        return text
    except ValueError as exc:
        # int()/float() quote the value in their message; a setting's value may be a secret pasted by mistake
        reason = str(exc) if type_name == "bool" else f"expected {type_name.split()[0]}"
        raise SettingsError(f"{name}: {reason} (the value is not shown)") from None


def _streamlit_secrets() -> Mapping[str, Any]:
    """``st.secrets`` when running under Streamlit with a secrets file, else an empty mapping."""
    if "streamlit" not in sys.modules:
        return {}
    try:
        import streamlit as st

        return {key: st.secrets[key] for key in st.secrets.keys()}
    except Exception:  # no secrets.toml, or not running under Streamlit: both mean "no secrets"
        return {}


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; see :func:`reload_settings`)."""
    return Settings.from_sources(os.environ, _streamlit_secrets())


def reload_settings() -> Settings:
    """Forget the cached settings and read them again."""
    get_settings.cache_clear()
    return get_settings()
