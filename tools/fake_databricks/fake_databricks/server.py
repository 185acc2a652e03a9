"""Thrift-over-HTTP front end of the fake warehouse, built on the connector's own generated TCLIService classes.

One HTTP POST carries one Thrift call (``TBinaryProtocol``). Statements run synchronously inside
``ExecuteStatement``; the reply carries ``directResults`` (status, metadata and the first page of rows), further
pages are served by ``FetchResults``. Rows are sent as ``COLUMN_BASED_SET`` (TColumn + nulls bitmap).

A ``TIMESTAMP`` value is sent with its offset in the session's time zone (``2026-12-05 10:00:00+00:00``), so the
connector returns a time-zone-aware ``datetime`` as it does against Databricks (whose Arrow timestamps carry the
session zone); a ``TIMESTAMP_NTZ`` value stays naive. The session time zone is the ``TIMEZONE`` session parameter,
else ``SET TIME ZONE``, else the warehouse's default (``WarehouseServer.time_zone``).
"""

from __future__ import annotations

import collections
import datetime as _dt
import decimal
import json
import logging
import socket
import struct
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import duckdb
import numpy as np
import pyarrow as pa
from databricks.sql.thrift_api.TCLIService import TCLIService, ttypes
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.transport import TTransport

from .engine import Engine, Param, Result, SqlError
from .faults import Fault, FaultPlan

logger = logging.getLogger(__name__)

_OK = ttypes.TStatus(statusCode=ttypes.TStatusCode.SUCCESS_STATUS)
_T = ttypes.TTypeId

# DuckDB type name -> (Thrift type id, TColumn field)
_SIMPLE_TYPES: dict[str, tuple[int, str]] = {
    "BOOLEAN": (_T.BOOLEAN_TYPE, "boolVal"),
    "TINYINT": (_T.TINYINT_TYPE, "byteVal"),
    "SMALLINT": (_T.SMALLINT_TYPE, "i16Val"),
    "UTINYINT": (_T.SMALLINT_TYPE, "i16Val"),
    "INTEGER": (_T.INT_TYPE, "i32Val"),
    "USMALLINT": (_T.INT_TYPE, "i32Val"),
    "BIGINT": (_T.BIGINT_TYPE, "i64Val"),
    "UINTEGER": (_T.BIGINT_TYPE, "i64Val"),
    "UBIGINT": (_T.BIGINT_TYPE, "i64Val"),
    "FLOAT": (_T.FLOAT_TYPE, "doubleVal"),
    "DOUBLE": (_T.DOUBLE_TYPE, "doubleVal"),
    "DATE": (_T.DATE_TYPE, "stringVal"),
    "TIMESTAMP": (_T.TIMESTAMP_TYPE, "stringVal"),
    "TIMESTAMP_NS": (_T.TIMESTAMP_TYPE, "stringVal"),
    "TIMESTAMP_MS": (_T.TIMESTAMP_TYPE, "stringVal"),
    "TIMESTAMP_S": (_T.TIMESTAMP_TYPE, "stringVal"),
    "TIMESTAMP WITH TIME ZONE": (_T.TIMESTAMP_TYPE, "stringVal"),
    "BLOB": (_T.BINARY_TYPE, "binaryVal"),
    "INTERVAL": (_T.INTERVAL_DAY_TIME_TYPE, "stringVal"),
}
_COLUMN_CLASSES = {
    "boolVal": (ttypes.TBoolColumn, False), "byteVal": (ttypes.TByteColumn, 0), "i16Val": (ttypes.TI16Column, 0),
    "i32Val": (ttypes.TI32Column, 0), "i64Val": (ttypes.TI64Column, 0), "doubleVal": (ttypes.TDoubleColumn, 0.0),
    "stringVal": (ttypes.TStringColumn, ""), "binaryVal": (ttypes.TBinaryColumn, b""),
}


def _thrift_type(duck_type: str) -> tuple[int, str]:
    t = duck_type.upper()
    if t in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[t]
    if t.startswith("DECIMAL"):
        return _T.DECIMAL_TYPE, "stringVal"
    if t.endswith("]"):
        return _T.ARRAY_TYPE, "stringVal"
    if t.startswith("STRUCT"):
        return _T.STRUCT_TYPE, "stringVal"
    if t.startswith("MAP"):
        return _T.MAP_TYPE, "stringVal"
    return _T.STRING_TYPE, "stringVal"


def _schema(result: Result) -> ttypes.TTableSchema:
    cols = []
    for i, (name, duck_type) in enumerate(zip(result.table.column_names, result.duck_types)):
        type_id, _ = _thrift_type(duck_type)
        qualifiers = None
        if type_id == _T.DECIMAL_TYPE:
            m = re.search(r"\((\d+)\s*,\s*(\d+)\)", duck_type)
            p, s = (int(m.group(1)), int(m.group(2))) if m else (38, 18)
            qualifiers = ttypes.TTypeQualifiers(qualifiers={
                "precision": ttypes.TTypeQualifierValue(i32Value=p), "scale": ttypes.TTypeQualifierValue(i32Value=s)})
        entry = ttypes.TTypeEntry(primitiveEntry=ttypes.TPrimitiveTypeEntry(type=type_id, typeQualifiers=qualifiers))
        cols.append(ttypes.TColumnDesc(columnName=name, typeDesc=ttypes.TTypeDesc(types=[entry]), position=i + 1))
    return ttypes.TTableSchema(columns=cols)


def _format(value: Any, type_id: int, zone: Any = None) -> Any:
    if type_id == _T.TIMESTAMP_TYPE:
        if isinstance(value, _dt.datetime) and value.tzinfo is not None and zone is not None:
            value = value.astimezone(zone)
        return value.isoformat(sep=" ") if isinstance(value, (_dt.datetime, _dt.date)) else str(value)
    if type_id == _T.DATE_TYPE:
        return value.isoformat() if isinstance(value, _dt.date) else str(value)
    if type_id in (_T.ARRAY_TYPE, _T.STRUCT_TYPE, _T.MAP_TYPE):
        return json.dumps(value, default=str)
    if isinstance(value, (decimal.Decimal, _dt.timedelta, uuid.UUID)):
        return str(value)
    return value


def _columns(result: Result, start: int, stop: int, zone: Any = None) -> list[ttypes.TColumn]:
    """Encode rows ``start:stop`` of a result as Thrift TColumns with null bitmaps (instants shown in ``zone``)."""
    out = []
    table = result.table.slice(start, stop - start)
    for col, duck_type in zip(table.columns, result.duck_types):
        type_id, fld = _thrift_type(duck_type)
        cls, default = _COLUMN_CLASSES[fld]
        is_null = col.is_null().to_numpy(zero_copy_only=False)
        nulls = np.packbits(is_null, bitorder="little").tobytes()
        values = col.to_pylist()
        if fld == "stringVal":
            values = [default if v is None else (v if isinstance(v, str) and type_id == _T.STRING_TYPE else _format(v, type_id, zone)) for v in values]
        else:
            values = [default if v is None else v for v in values]
            if fld == "doubleVal":
                values = [float(v) for v in values]
        out.append(ttypes.TColumn(**{fld: cls(values=values, nulls=nulls)}))
    return out


def _guid() -> ttypes.THandleIdentifier:
    return ttypes.THandleIdentifier(guid=uuid.uuid4().bytes, secret=uuid.uuid4().bytes)


@dataclass
class _Session:
    cursor: duckdb.DuckDBPyConnection
    lock: threading.Lock = field(default_factory=threading.Lock)
    statement_timeout_s: Optional[float] = None  # the STATEMENT_TIMEOUT session parameter, as Databricks SQL has it
    identity: str = ""  # who opened the session (the token's principal), for the statement log


def _session_parameter(configuration: Optional[dict], name: str) -> Optional[str]:
    for key, value in (configuration or {}).items():
        if str(key).upper() == name:
            return str(value)
    return None


def _zone(cursor: duckdb.DuckDBPyConnection) -> Any:
    from zoneinfo import ZoneInfo

    name = cursor.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    return _dt.timezone.utc if name.upper() in ("UTC", "ETC/UTC", "GMT") else ZoneInfo(name)


def _statement_timeout(configuration: Optional[dict]) -> Optional[float]:
    for key, value in (configuration or {}).items():
        if str(key).upper() == "STATEMENT_TIMEOUT":
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return seconds if seconds > 0 else None
    return None


@dataclass
class _Operation:
    result: Result
    offset: int = 0
    zone: Any = None


class ThriftHandler(TCLIService.Iface):
    """Implements the TCLIService calls the connector makes, against an :class:`Engine`."""

    def __init__(self, engine: Engine, page_rows: int, on_statement: Callable[[str, str], None]) -> None:
        self.engine = engine
        self.time_zone = "UTC"  # the warehouse's default session time zone (its TIMEZONE configuration)
        self.page_rows = page_rows
        self.on_statement = on_statement
        self.sessions: dict[bytes, _Session] = {}
        self.operations: dict[bytes, _Operation] = {}
        self._lock = threading.Lock()
        self.local = threading.local()

    # ---- sessions ----
    def OpenSession(self, req: ttypes.TOpenSessionReq) -> ttypes.TOpenSessionResp:
        handle = _guid()
        cur = self.engine.cursor()
        self.engine.set_time_zone(cur, _session_parameter(req.configuration, "TIMEZONE") or self.time_zone)
        ns = req.initialNamespace
        if ns and (ns.catalogName or ns.schemaName):
            self.engine.use(cur, ns.catalogName, ns.schemaName)
        with self._lock:
            self.sessions[handle.guid] = _Session(cur, statement_timeout_s=_statement_timeout(req.configuration),
                                                  identity=getattr(self.local, "identity", ""))
        return ttypes.TOpenSessionResp(
            status=_OK,
            serverProtocolVersion=ttypes.TProtocolVersion.SPARK_CLI_SERVICE_PROTOCOL_V8,
            sessionHandle=ttypes.TSessionHandle(sessionId=handle),
            configuration={},
            initialNamespace=ns,
            canUseMultipleCatalogs=True,
        )

    def CloseSession(self, req: ttypes.TCloseSessionReq) -> ttypes.TCloseSessionResp:
        with self._lock:
            sess = self.sessions.pop(req.sessionHandle.sessionId.guid, None)
        if sess:
            with sess.lock:
                sess.cursor.close()
        return ttypes.TCloseSessionResp(status=_OK)

    # ---- statements ----
    def ExecuteStatement(self, req: ttypes.TExecuteStatementReq) -> ttypes.TExecuteStatementResp:
        handle = _guid()
        op_handle = ttypes.TOperationHandle(operationId=handle, operationType=ttypes.TOperationType.EXECUTE_STATEMENT,
                                            hasResultSet=True)
        fault: Optional[Fault] = getattr(self.local, "fault", None)
        try:
            if fault is not None and fault.conflict:
                raise SqlError(
                    "ConcurrentAppendException: Files were added to the root of the table by a concurrent update. "
                    "Please try the operation again.", "2D521", "DELTA_CONCURRENT_APPEND")
            if fault is not None and fault.server_error:
                error_class, sqlstate = fault.server_error
                raise SqlError("Injected failure while running the statement.", sqlstate, error_class)
            sess = self.sessions.get(req.sessionHandle.sessionId.guid)
            if sess is None:
                return ttypes.TExecuteStatementResp(status=ttypes.TStatus(
                    statusCode=ttypes.TStatusCode.INVALID_HANDLE_STATUS, errorMessage="Invalid SessionHandle"))
            params = [
                Param(p.name, p.type or "STRING", p.value.stringValue if p.value else None, p.arguments)
                for p in (req.parameters or [])
            ]
            with sess.lock:
                self.on_statement(req.statement, getattr(self.local, "identity", "") or sess.identity)
                result = self._execute_bounded(sess, req.statement, params)
                zone = _zone(sess.cursor)
        except SqlError as e:
            logger.info("statement failed: %s", e)
            status = ttypes.TGetOperationStatusResp(
                status=_OK, operationState=ttypes.TOperationState.ERROR_STATE, sqlState=e.sqlstate,
                errorCode=0, errorMessage=str(e), displayMessage=str(e), errorDetailsJson=json.dumps(
                    {"errorClass": e.error_class, "sqlState": e.sqlstate}))
            return ttypes.TExecuteStatementResp(status=_OK, operationHandle=op_handle,
                                                directResults=ttypes.TSparkDirectResults(operationStatus=status))
        op_handle.modifiedRowCount = float(result.modified_rows) if result.modified_rows is not None else None
        max_rows = (req.getDirectResults.maxRows if req.getDirectResults else None) or self.page_rows
        page = min(max_rows, self.page_rows)
        n = result.table.num_rows
        first = min(n, page)
        has_more = first < n
        op = _Operation(result, offset=first, zone=zone)
        if has_more:
            with self._lock:
                self.operations[handle.guid] = op
        direct = ttypes.TSparkDirectResults(
            operationStatus=ttypes.TGetOperationStatusResp(
                status=_OK, operationState=ttypes.TOperationState.FINISHED_STATE, hasResultSet=True,
                numModifiedRows=result.modified_rows),
            resultSetMetadata=self._metadata(result),
            resultSet=ttypes.TFetchResultsResp(status=_OK, hasMoreRows=has_more, results=ttypes.TRowSet(
                startRowOffset=0, rows=[], columns=_columns(result, 0, first, zone))),
            closeOperation=None if has_more else ttypes.TCloseOperationResp(status=_OK),
        )
        return ttypes.TExecuteStatementResp(status=_OK, operationHandle=op_handle, directResults=direct)

    def _execute_bounded(self, sess: _Session, statement: str, params: list) -> Result:
        """Run the statement; past the session's STATEMENT_TIMEOUT it is interrupted and fails as Databricks does."""
        if sess.statement_timeout_s is None:
            return self.engine.execute(statement, params, sess.cursor)
        fired = threading.Event()

        def interrupt() -> None:
            fired.set()
            sess.cursor.interrupt()

        timer = threading.Timer(sess.statement_timeout_s, interrupt)
        timer.daemon = True
        timer.start()
        try:
            return self.engine.execute(statement, params, sess.cursor)
        except SqlError:
            if fired.is_set():
                raise SqlError(
                    f"Query execution was cancelled due to exceeding the timeout ({sess.statement_timeout_s:g}s). "
                    "Please increase the limit in seconds by setting STATEMENT_TIMEOUT.", "57KD0",
                    "QUERY_EXECUTION_TIMEOUT_EXCEEDED") from None
            raise
        finally:
            timer.cancel()

    @staticmethod
    def _metadata(result: Result) -> ttypes.TGetResultSetMetadataResp:
        return ttypes.TGetResultSetMetadataResp(status=_OK, schema=_schema(result),
                                                resultFormat=ttypes.TSparkRowSetType.COLUMN_BASED_SET,
                                                lz4Compressed=False, isStagingOperation=False)

    def GetOperationStatus(self, req: ttypes.TGetOperationStatusReq) -> ttypes.TGetOperationStatusResp:
        op = self.operations.get(req.operationHandle.operationId.guid)
        return ttypes.TGetOperationStatusResp(
            status=_OK, operationState=ttypes.TOperationState.FINISHED_STATE, hasResultSet=True,
            numModifiedRows=op.result.modified_rows if op else None)

    def GetResultSetMetadata(self, req: ttypes.TGetResultSetMetadataReq) -> ttypes.TGetResultSetMetadataResp:
        op = self.operations.get(req.operationHandle.operationId.guid)
        if op is None:
            return ttypes.TGetResultSetMetadataResp(status=ttypes.TStatus(
                statusCode=ttypes.TStatusCode.INVALID_HANDLE_STATUS, errorMessage="Invalid OperationHandle"))
        return self._metadata(op.result)

    def FetchResults(self, req: ttypes.TFetchResultsReq) -> ttypes.TFetchResultsResp:
        op = self.operations.get(req.operationHandle.operationId.guid)
        if op is None:
            return ttypes.TFetchResultsResp(status=ttypes.TStatus(
                statusCode=ttypes.TStatusCode.INVALID_HANDLE_STATUS, errorMessage="Invalid OperationHandle"))
        start = op.offset
        stop = min(op.result.table.num_rows, start + min(req.maxRows or self.page_rows, self.page_rows))
        op.offset = stop
        return ttypes.TFetchResultsResp(
            status=_OK, hasMoreRows=stop < op.result.table.num_rows,
            results=ttypes.TRowSet(startRowOffset=start, rows=[], columns=_columns(op.result, start, stop, op.zone)),
            resultSetMetadata=self._metadata(op.result) if req.includeResultSetMetadata else None)

    def CloseOperation(self, req: ttypes.TCloseOperationReq) -> ttypes.TCloseOperationResp:
        with self._lock:
            self.operations.pop(req.operationHandle.operationId.guid, None)
        return ttypes.TCloseOperationResp(status=_OK)

    def CancelOperation(self, req: ttypes.TCancelOperationReq) -> ttypes.TCancelOperationResp:
        return ttypes.TCancelOperationResp(status=_OK)

    def GetInfo(self, req: ttypes.TGetInfoReq) -> ttypes.TGetInfoResp:
        return ttypes.TGetInfoResp(status=_OK, infoValue=ttypes.TGetInfoValue(stringValue="Fake Databricks SQL"))


def thrift_method_name(body: bytes) -> str:
    """Name of the Thrift call in a TBinaryProtocol (strict) message, '' if unreadable."""
    try:
        (size,) = struct.unpack("!i", body[4:8])
        return body[8:8 + size].decode("utf-8", "replace")
    except Exception:
        return ""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], owner: "WarehouseServer") -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def get_request(self):  # type: ignore[override]
        sock, addr = super().get_request()
        if self.owner.ssl_context is not None:
            sock = self.owner.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, addr

    def shutdown_request(self, request):  # type: ignore[override]
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:  # quiet: clients drop sockets on purpose
        logger.debug("connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, headers: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _oauth_reply(self, reply: Any) -> bool:
        if reply is None:
            return False
        from .oauth import encode

        status, body, headers = encode(reply)
        self._send(status, body, headers)
        return True

    def do_GET(self) -> None:
        oauth = self.server.owner.oauth
        if oauth is not None and self._oauth_reply(oauth.handle_get(self.path, self.server.owner.base_url)):
            return
        if self._files_request("GET"):
            return
        if self.path.split("?")[0].rstrip("/") == "/.well-known/databricks-config":  # a workspace serves it always
            body = json.dumps({"oidc_endpoint": f"{self.server.owner.base_url}/oidc", "workspace_id": "1234567890"})
            self._send(200, body.encode(), {"Content-Type": "application/json"})
            return
        self._send(404, b"Not Found")

    # ---- the Files API (files_api.py): volume files for the SDK's WorkspaceClient().files ----
    def do_PUT(self) -> None:
        if not self._files_request("PUT"):
            self._send(404, b"Not Found")

    def do_DELETE(self) -> None:
        if not self._files_request("DELETE"):
            self._send(404, b"Not Found")

    def do_HEAD(self) -> None:
        if not self._files_request("HEAD"):
            self._send(404, b"")

    def _files_request(self, method: str) -> bool:
        """Answer a Files API call (True), or False when the path is not one."""
        from .files_api import DIRECTORIES_PREFIX, FILES_PREFIX

        owner = self.server.owner
        if not self.path.startswith((FILES_PREFIX, DIRECTORIES_PREFIX)):
            return False
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        identity = owner.identify(self.headers.get("Authorization"))
        if identity is None:
            self._send(401, b'{"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}',
                       {"Content-Type": "application/json"})
            return True
        status, reply, headers = owner.files.handle(method, self.path, body, identity=identity)
        if method == "HEAD":  # no body, but the real length of what GET would send
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "content-length" not in headers:
                self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        self._send(status, reply, {k: v for k, v in headers.items() if k != "content-length"})
        return True

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        auth = self.headers.get("Authorization")
        if owner.oauth is not None and self._oauth_reply(owner.oauth.handle_post(self.path, auth, body)):
            return
        if self.path.split("?")[0].rstrip("/") != owner.http_path.rstrip("/"):
            self._send(404, b"Not Found", {"x-databricks-reason-phrase": "No such warehouse"})
            return
        identity = owner.identify(auth)
        if identity is None:
            self._send(401, b"Unauthorized", {"x-databricks-reason-phrase": "Invalid access token.",
                                               "Content-Type": "text/plain"})
            return
        method = thrift_method_name(body)
        owner.count_method(method, self.headers.get("User-Agent") or "")
        fault = owner.faults.take(method)
        if fault is not None:
            if fault.http_status:
                headers = {"Content-Type": "text/plain", "x-databricks-reason-phrase": f"Injected HTTP {fault.http_status}"}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer() else fault.retry_after)
                self._send(fault.http_status, f"injected HTTP {fault.http_status}".encode(), headers)
                return
            if fault.hang:
                owner.faults.wait_released(fault.hang_timeout)
                self._drop()
                return
        owner.handler.local.fault = fault
        owner.handler.local.identity = identity
        try:
            itrans = TTransport.TMemoryBuffer(body)
            otrans = TTransport.TMemoryBuffer()
            owner.processor.process(TBinaryProtocolAccelerated(itrans), TBinaryProtocolAccelerated(otrans))
            reply = otrans.getvalue()
        finally:
            owner.handler.local.fault = None
            owner.handler.local.identity = ""
        if fault is not None and fault.delay:
            owner.stopping.wait(fault.delay)
        if fault is not None and fault.drop_after_execute:
            self._drop()
            return
        try:
            self._send(200, reply, {"Content-Type": "application/x-thrift"})
        except OSError:
            logger.debug("client went away before the reply")
            self.close_connection = True


class WarehouseServer:
    """The HTTP(S) listener plus Thrift handler; can be stopped and restarted on the same port."""

    def __init__(self, engine: Engine, host: str, port: int, http_path: str, token: str,
                 faults: FaultPlan, ssl_context: Any = None, page_rows: int = 4096) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.http_path = http_path
        self.token = token
        self.faults = faults
        self.ssl_context = ssl_context
        self.oauth: Any = None  # an oauth.OAuthServer when the OAuth M2M mode is on
        from .files_api import FilesStore

        self.files = FilesStore()  # the Files API's volume files
        self.statements: list[str] = []
        #: (statement, identity) per ExecuteStatement: who ran it (see :meth:`identify`; never the token itself)
        self.statement_log: list[tuple[str, str]] = []
        #: user access tokens (as Databricks Apps forwards them in X-Forwarded-Access-Token) -> the user's email
        self.user_tokens: dict[str, str] = {}
        #: how the query history names the principal of ``token`` (a personal token or the app's service principal)
        self.token_identity = "service-principal"
        self.method_counts: collections.Counter[str] = collections.Counter()
        self.user_agents: collections.Counter[str] = collections.Counter()
        self._stats_lock = threading.Lock()
        self.handler = ThriftHandler(engine, page_rows, self._record_statement)
        self.processor = TCLIService.Processor(self.handler)
        self.stopping = threading.Event()
        self._httpd: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def _record_statement(self, sql: str, identity: str = "") -> None:
        with self._stats_lock:
            self.statements.append(sql)
            self.statement_log.append((sql, identity))

    def identify(self, authorization: Optional[str]) -> Optional[str]:
        """The principal an ``Authorization`` header stands for, or None when it is not accepted: the workspace token
        (:attr:`token_identity`), a user token (its email), or an OAuth token this server issued (its client id)."""
        if authorization == f"Bearer {self.token}":
            return self.token_identity
        bearer = (authorization or "").removeprefix("Bearer ")
        if authorization and authorization.startswith("Bearer ") and bearer in self.user_tokens:
            return self.user_tokens[bearer]
        if self.oauth is not None and self.oauth.accepts(authorization):
            return self.oauth.client_of(authorization) or "service-principal"
        return None

    @property
    def base_url(self) -> str:
        """``scheme://host:port`` of this listener (what OAuth discovery documents point at)."""
        return f"{'https' if self.ssl_context is not None else 'http'}://{self.host}:{self.port}"

    def count_method(self, method: str, user_agent: str = "") -> None:
        """Count one received Thrift call and remember its client's User-Agent."""
        with self._stats_lock:
            self.method_counts[method] += 1
            self.user_agents[user_agent] += 1

    @property
    def running(self) -> bool:
        """True while the listener accepts connections."""
        return self._httpd is not None

    def start(self) -> None:
        """Bind (to ``self.port``; 0 picks a free one, remembered for restarts) and serve in a thread."""
        if self._httpd is not None:
            return
        self.stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-warehouse-{self.port}", daemon=True)
        self._thread.start()
        logger.info("fake warehouse listening on %s:%s", self.host, self.port)

    def stop(self) -> None:
        """Stop listening and drop every open (keep-alive) connection; the port is then closed."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        self.faults.release()
        httpd.shutdown()
        httpd.server_close()
        with httpd.sockets_lock:
            socks = list(httpd.open_sockets)
            httpd.open_sockets.clear()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)
        logger.info("fake warehouse on port %s stopped", self.port)


__all__ = ["WarehouseServer", "ThriftHandler", "thrift_method_name"]
