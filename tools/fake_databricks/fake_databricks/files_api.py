"""The Databricks Files API (``/api/2.0/fs/...``) of the fake workspace: Unity Catalog volume files in memory.

Serves what ``databricks-sdk``'s ``WorkspaceClient().files`` sends (``databricks/sdk/service/files.py``):

- ``PUT    /api/2.0/fs/files{path}?overwrite=true|false`` - upload (body = the raw bytes); 409 when the file exists
  and ``overwrite=false``;
- ``GET    /api/2.0/fs/files{path}`` - download (``content-type``, ``content-length``, ``last-modified``);
- ``HEAD   /api/2.0/fs/files{path}`` - metadata;
- ``DELETE /api/2.0/fs/files{path}`` - delete (404 when missing);
- ``PUT    /api/2.0/fs/directories{path}`` - create (``mkdir -p``, idempotent);
- ``GET    /api/2.0/fs/directories{path}?page_size=&page_token=`` - list one level:
  ``{"contents": [{"path", "name", "is_directory", "file_size", "last_modified"}], "next_page_token"}``, 404 when
  the directory does not exist;
- ``HEAD`` / ``DELETE /api/2.0/fs/directories{path}``.

Errors are JSON ``{"error_code": ..., "message": ...}`` with the HTTP status the SDK maps to its exception classes
(401 ``UNAUTHENTICATED``, 403 ``PERMISSION_DENIED``, 404 ``NOT_FOUND``, 409 ``ALREADY_EXISTS``, 5xx).
Paths must start with ``/Volumes/<catalog>/<schema>/<volume>/``, and, as on Databricks, the volume must exist
(:meth:`FilesStore.create_volume`, or ``CREATE VOLUME`` over SQL): else 404 ``NOT_FOUND``; a caller whose access to
a volume was revoked (:meth:`FilesStore.revoke`) gets 403 ``PERMISSION_DENIED``. Faults: :meth:`FilesStore.fail_next` (the next N
calls, optionally of one HTTP method) and :attr:`FilesStore.unavailable` (every call, until set to None).
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

FILES_PREFIX = "/api/2.0/fs/files"
DIRECTORIES_PREFIX = "/api/2.0/fs/directories"
PAGE_SIZE = 1000

_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL_ERROR", 503: "TEMPORARILY_UNAVAILABLE"}

#: status, body, headers
Reply = tuple[int, bytes, dict[str, str]]


@dataclass
class _File:
    data: bytes
    modified: float


@dataclass
class _Fault:
    status: int
    method: Optional[str]
    remaining: int


@dataclass
class FilesStore:
    """The volume files of the fake workspace (thread-safe), with call counts and fault injection."""

    files: dict[str, _File] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    #: ``/Volumes/<catalog>/<schema>/<volume>`` that exist (other volume paths answer 404)
    volumes: set[str] = field(default_factory=set)
    #: volume -> identities refused (403); ``"*"`` refuses everyone
    revoked: dict[str, set[str]] = field(default_factory=dict)
    #: Every call answers this HTTP status (e.g. 503, 403) while set: the Files API down or access revoked.
    unavailable: Optional[int] = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- test helpers ----
    def fail_next(self, count: int = 1, status: int = 503, *, method: Optional[str] = None) -> None:
        """The next ``count`` calls (only ``method`` ones, e.g. ``"DELETE"``, when given) answer ``status``."""
        with self._lock:
            self._faults.append(_Fault(status, method, count))

    def create_volume(self, volume: str) -> None:
        """Make ``/Volumes/<catalog>/<schema>/<volume>`` exist (what ``CREATE VOLUME`` does)."""
        with self._lock:
            self.volumes.add(_volume_of(volume))

    def revoke(self, volume: str, identity: str = "*") -> None:
        """Refuse ``identity`` (everyone by default) on ``volume`` with 403, as a missing ``READ/WRITE VOLUME`` grant."""
        with self._lock:
            self.revoked.setdefault(_volume_of(volume), set()).add(identity)

    def put(self, path: str, data: bytes) -> None:
        """Create a file directly (no HTTP), its parent directories too."""
        with self._lock:
            self._store(path, data)

    def read(self, path: str) -> bytes:
        """A file's bytes (KeyError when missing)."""
        with self._lock:
            return self.files[path].data

    def list_files(self, prefix: str = "/") -> list[str]:
        """Every file path under ``prefix``, sorted."""
        with self._lock:
            return sorted(p for p in self.files if p.startswith(prefix))

    def count(self, method: str, kind: str = "files") -> int:
        """Calls received with this HTTP method on ``files`` or ``directories`` paths."""
        with self._lock:
            return sum(1 for m, k in self.calls if m == method and k == kind)

    # ---- HTTP ----
    def handle(self, method: str, raw_path: str, body: bytes, identity: str = "") -> Optional[Reply]:
        """Answer a Files API request made by ``identity``, or None when the path is not a Files API path."""
        parts = urlsplit(raw_path)
        if parts.path.startswith(FILES_PREFIX + "/"):
            kind, path = "files", unquote(parts.path[len(FILES_PREFIX):])
        elif parts.path.startswith(DIRECTORIES_PREFIX + "/") or parts.path == DIRECTORIES_PREFIX:
            kind, path = "directories", unquote(parts.path[len(DIRECTORIES_PREFIX):]) or "/"
        else:
            return None
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.calls.append((method, kind))
            status = self._fault_status(method)
            if status is not None:
                return _error(status, f"injected HTTP {status}")
            if not _volume_path(path):
                return _error(400, f"path must be /Volumes/<catalog>/<schema>/<volume>/...: {path}")
            volume = _volume_of(path)
            if volume not in self.volumes:
                return _error(404, f"Volume '{volume[len('/Volumes/'):].replace('/', '.')}' does not exist.")
            refused = self.revoked.get(volume, set())
            if "*" in refused or identity in refused:
                return _error(403, f"User does not have READ VOLUME / WRITE VOLUME on Volume "
                                   f"'{volume[len('/Volumes/'):].replace('/', '.')}'.")
            path = path.rstrip("/") if kind == "directories" else path
            if kind == "files":
                return self._file(method, path, query, body)
            return self._directory(method, path, query)

    def _fault_status(self, method: str) -> Optional[int]:
        if self.unavailable is not None:
            return self.unavailable
        for fault in self._faults:
            if fault.remaining > 0 and (fault.method is None or fault.method == method):
                fault.remaining -= 1
                if not fault.remaining:
                    self._faults.remove(fault)
                return fault.status
        return None

    def _file(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        entry = self.files.get(path)
        if method == "PUT":
            if entry is not None and query.get("overwrite", "true").lower() == "false":
                return _error(409, f"The file being created already exists: {path}")
            if path in self.directories:
                return _error(409, f"A directory exists at {path}")
            self._store(path, body)
            return 204, b"", {}
        if entry is None:
            return _error(404, f"The file does not exist: {path}") if method != "HEAD" else (404, b"", {})
        headers = {"content-type": "application/octet-stream", "content-length": str(len(entry.data)),
                   "last-modified": email.utils.formatdate(entry.modified, usegmt=True)}
        if method == "GET":
            return 200, entry.data, headers
        if method == "HEAD":
            return 200, b"", headers
        if method == "DELETE":
            del self.files[path]
            return 204, b"", {}
        return _error(405, f"method {method} not allowed on files")

    def _directory(self, method: str, path: str, query: dict[str, str]) -> Reply:
        if method == "PUT":
            if path in self.files:
                return _error(409, f"A file exists at {path}")
            self._mkdirs(path)
            return 204, b"", {}
        if path not in self.directories:
            return _error(404, f"The directory does not exist: {path}") if method != "HEAD" else (404, b"", {})
        children = sorted({*(p for p in self.files if p.rsplit("/", 1)[0] == path),
                           *(d for d in self.directories if d.rsplit("/", 1)[0] == path and d != path)})
        if method == "HEAD":
            return 200, b"", {}
        if method == "DELETE":
            if children:
                return _error(409, f"The directory is not empty: {path}")
            self.directories.discard(path)
            return 204, b"", {}
        if method == "GET":
            size = max(1, min(PAGE_SIZE, int(query.get("page_size") or PAGE_SIZE)))
            start = int(query.get("page_token") or 0)
            page = children[start:start + size]
            contents = []
            for child in page:
                entry = self.files.get(child)
                item: dict[str, object] = {"path": child, "name": child.rsplit("/", 1)[1],
                                           "is_directory": entry is None}
                if entry is not None:
                    item["file_size"] = len(entry.data)
                    item["last_modified"] = int(entry.modified * 1000)
                contents.append(item)
            doc: dict[str, object] = {"contents": contents} if contents else {}
            if start + size < len(children):
                doc["next_page_token"] = str(start + size)
            return 200, json.dumps(doc).encode(), {"Content-Type": "application/json"}
        return _error(405, f"method {method} not allowed on directories")

    def _store(self, path: str, data: bytes) -> None:
        self._mkdirs(path.rsplit("/", 1)[0])
        self.files[path] = _File(bytes(data), time.time())

    def _mkdirs(self, path: str) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self.directories.add("/" + "/".join(parts[:i]))


def _volume_path(path: str) -> bool:
    parts = path.strip("/").split("/")
    return len(parts) >= 4 and parts[0] == "Volumes" and all(parts[:4])


def _volume_of(path: str) -> str:
    return "/" + "/".join(path.strip("/").split("/")[:4])


def _error(status: int, message: str) -> Reply:
    body = json.dumps({"error_code": _CODES.get(status, "UNKNOWN"), "message": message}).encode()
    return status, body, {"Content-Type": "application/json"}


__all__ = ["FilesStore", "FILES_PREFIX", "DIRECTORIES_PREFIX"]
