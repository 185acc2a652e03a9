"""A local fake Databricks SQL warehouse that the unmodified ``databricks-sql-connector`` talks to over the wire.

Development tool only (needs the ``fake-warehouse`` extra: duckdb, pyarrow); the application never imports it.

    from fake_databricks import FakeWarehouse
    with FakeWarehouse() as wh:
        conn = databricks.sql.connect(**wh.connect_kwargs())
"""

from __future__ import annotations

import logging
import shutil
from typing import Any, Optional

from .engine import Engine, Param, SqlError
from .faults import Fault, FaultPlan
from .server import WarehouseServer

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "dapi-fake-token"
DEFAULT_HTTP_PATH = "/sql/1.0/warehouses/fake"
#: the volume a fresh fake workspace has (as the bundle's ``resources/`` would create it)
DEFAULT_VOLUMES = ("/Volumes/main/ops/usage",)

__all__ = ["FakeWarehouse", "FaultPlan", "Fault", "SqlError", "DEFAULT_TOKEN", "DEFAULT_HTTP_PATH", "DEFAULT_VOLUMES"]


class FakeWarehouse:
    """A DuckDB-backed stand-in for a Databricks SQL warehouse, served over Thrift/HTTP(S) on 127.0.0.1.

    ``db_path=None`` keeps data in memory (kept across :meth:`stop`/:meth:`start`). ``port=0`` picks a free
    port on the first start; later starts reuse it, so a stop/start pair simulates an outage and recovery.

    Like a workspace: ``time_zone`` is the warehouse's default session time zone (its ``TIMEZONE`` configuration;
    a session may set its own); ``volumes`` are the Unity Catalog volumes that exist for the Files API (others answer
    404; ``CREATE VOLUME`` adds one); ``user_tokens`` maps user access tokens (what Databricks Apps forwards in
    ``X-Forwarded-Access-Token``) to the user's email, which :attr:`statement_log` then shows as the statement's
    principal. ``cluster_by_supported = False`` makes it refuse ``CLUSTER BY`` like a runtime without liquid clustering.
    """

    def __init__(self, db_path: Optional[str] = None, tls: bool = False, token: str = DEFAULT_TOKEN,
                 port: int = 0, host: str = "127.0.0.1", http_path: str = DEFAULT_HTTP_PATH,
                 page_rows: int = 4096, oauth_clients: Optional[dict[str, str]] = None,
                 oauth_token_ttl_s: int = 3600, time_zone: str = "UTC",
                 volumes: tuple[str, ...] = DEFAULT_VOLUMES, user_tokens: Optional[dict[str, str]] = None) -> None:
        self.db_path = db_path
        self.tls = tls
        self.token = token
        self.host = host
        self.http_path = http_path
        self.ca_file: Optional[str] = None
        self._tls_dir: Optional[str] = None
        ssl_context = None
        if tls:
            from .tls import make_self_signed, server_context

            cert, key = make_self_signed(host=host)
            self.ca_file = cert
            self._tls_dir = cert.rsplit("/", 1)[0]
            ssl_context = server_context(cert, key)
        self.engine = Engine(db_path)
        self.faults = FaultPlan()
        self._server = WarehouseServer(self.engine, host, port, http_path, token, self.faults, ssl_context, page_rows)
        self._server.handler.time_zone = time_zone
        self._server.user_tokens.update(user_tokens or {})
        for volume in volumes:
            self._server.files.create_volume(volume)
        self.engine.on_create_volume = self._server.files.create_volume
        self.oauth = None
        if oauth_clients:  # OAuth M2M mode: OIDC discovery + token endpoint, issued tokens accepted as Bearer
            from .oauth import OAuthServer

            self.oauth = self._server.oauth = OAuthServer(oauth_clients, oauth_token_ttl_s)

    # ---- lifecycle ----
    def start(self) -> "FakeWarehouse":
        """Start serving (idempotent); returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving: the port is closed and open connections are dropped. Data is kept."""
        self._server.stop()

    def close(self) -> None:
        """Stop and release the database and TLS files."""
        self.stop()
        self.engine.close()
        if self._tls_dir:
            shutil.rmtree(self._tls_dir, ignore_errors=True)

    def __enter__(self) -> "FakeWarehouse":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- connection details ----
    @property
    def port(self) -> int:
        """TCP port (0 until the first start when constructed with ``port=0``)."""
        return self._server.port

    @property
    def running(self) -> bool:
        """True while accepting connections."""
        return self._server.running

    @property
    def uri(self) -> str:
        """Full URL for the connector's ``_connection_uri``."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}{self.http_path}"

    def env(self) -> dict[str, str]:
        """Environment variables pointing a client at this warehouse."""
        env = {
            "DATABRICKS_SERVER_HOSTNAME": self.host,
            "DATABRICKS_HTTP_PATH": self.http_path,
            "DATABRICKS_ACCESS_TOKEN": self.token,
            "DATABRICKS_CONNECTION_URI": self.uri,
        }
        if self.tls and self.ca_file:
            env["DATABRICKS_TLS_CA_FILE"] = self.ca_file
        return env

    def oauth_env(self, client_id: Optional[str] = None) -> dict[str, str]:
        """Like :meth:`env` but for a service principal: ``DATABRICKS_CLIENT_ID`` / ``DATABRICKS_CLIENT_SECRET``
        (the first registered client unless ``client_id`` is given) and no access token."""
        if self.oauth is None:
            raise RuntimeError("FakeWarehouse(oauth_clients={...}) is needed for oauth_env()")
        client_id = client_id or next(iter(self.oauth.clients))
        env = {k: v for k, v in self.env().items() if k != "DATABRICKS_ACCESS_TOKEN"}
        env["DATABRICKS_CLIENT_ID"] = client_id
        env["DATABRICKS_CLIENT_SECRET"] = self.oauth.clients[client_id]
        return env

    @property
    def files(self) -> Any:
        """The fake workspace's Files API store (:class:`fake_databricks.files_api.FilesStore`): volume files, call
        counts, ``fail_next(...)`` and ``unavailable`` faults."""
        return self._server.files

    @property
    def base_url(self) -> str:
        """``scheme://host:port``: the workspace host for ``databricks-sdk`` (Files API, OAuth)."""
        return self._server.base_url

    @property
    def tokens_issued(self) -> int:
        """OAuth access tokens issued by the token endpoint (0 without OAuth mode)."""
        return self.oauth.tokens_issued if self.oauth is not None else 0

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``databricks.sql.connect`` with fast-fail retry settings."""
        kw: dict[str, Any] = {
            "server_hostname": self.host,
            "http_path": self.http_path,
            "access_token": self.token,
            "_connection_uri": self.uri,
            "enable_telemetry": False,
            "_retry_stop_after_attempts_count": 2,
            "_retry_stop_after_attempts_duration": 3,
            "_retry_delay_min": 0.1,
            "_retry_delay_max": 5,
            "_socket_timeout": 5,
        }
        if self.tls and self.ca_file:
            kw["_tls_trusted_ca_file"] = self.ca_file
        kw.update(overrides)
        return kw

    # ---- direct engine access ----
    def query(self, sql: str, params: Any = None) -> list[tuple]:
        """Run Databricks SQL directly on the engine (not over the wire, not recorded); returns rows."""
        if isinstance(params, dict):
            plist = [Param(k, "PY", None, py=v) for k, v in params.items()]
        else:
            plist = [Param(None, "PY", None, py=v) for v in (params or [])]
        result = self.engine.execute(sql, plist)
        cols = [c.to_pylist() for c in result.table.columns]
        return list(zip(*cols)) if cols else []

    def load_dataframe(self, table: str, df: Any) -> int:
        """Bulk-load a pandas DataFrame into ``catalog.schema.table`` (created if missing); returns rows loaded."""
        return self.engine.load_dataframe(table, df)

    # ---- statistics ----
    @property
    def statements(self) -> list[str]:
        """SQL texts received by ExecuteStatement over the wire, in order (including failed ones)."""
        return list(self._server.statements)

    @property
    def statement_log(self) -> list[tuple[str, str]]:
        """(SQL text, principal) per statement received: who ran it, by the token the request carried
        (``"service-principal"`` for :attr:`token`, a user's email for one of ``user_tokens``, an OAuth client id)."""
        return list(self._server.statement_log)

    def add_user_token(self, token: str, email: str) -> None:
        """Accept ``token`` as the access token of user ``email`` (forwarded on-behalf-of-user by Databricks Apps)."""
        self._server.user_tokens[token] = email

    @property
    def cluster_by_supported(self) -> bool:
        """False: ``CREATE TABLE ... CLUSTER BY`` fails with a syntax error, as on a runtime without liquid clustering."""
        return self._server.engine.cluster_by_supported

    @cluster_by_supported.setter
    def cluster_by_supported(self, value: bool) -> None:
        self._server.engine.cluster_by_supported = bool(value)

    @property
    def statement_count(self) -> int:
        """Number of statements received over the wire."""
        return len(self._server.statements)

    @property
    def method_counts(self) -> dict[str, int]:
        """Thrift calls received per method name (e.g. ``{"FetchResults": 3}``)."""
        return dict(self._server.method_counts)

    @property
    def user_agents(self) -> dict[str, int]:
        """Thrift calls received per ``User-Agent`` header (the connector adds ``user_agent_entry`` there)."""
        return dict(self._server.user_agents)

    def reset_stats(self) -> None:
        """Forget recorded statements, call counts and User-Agents."""
        self._server.statements.clear()
        self._server.statement_log.clear()
        self._server.method_counts.clear()
        self._server.user_agents.clear()
