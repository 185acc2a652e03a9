"""Optional OAuth machine-to-machine mode of the fake warehouse: a tiny workspace OIDC server.

Serves what ``databricks-sdk`` asks a workspace for when a service principal logs in:

- ``GET /oidc/.well-known/oauth-authorization-server`` (discovery document: ``token_endpoint`` & co.);
- ``GET /.well-known/databricks-config`` (host metadata: ``oidc_endpoint``; newer SDK ``Config`` reads it);
- ``POST /oidc/v1/token`` (``grant_type=client_credentials``; client id/secret by HTTP Basic, as the SDK sends them,
  or as form fields). A wrong secret or unknown client gets ``401 {"error": "invalid_client", ...}`` like a real OIDC
  server; a scope outside ``all-apis sql offline_access`` (e.g. ``a l l - a p i s``, what some SDK releases send
  when handed a string) gets ``400 {"error": "invalid_scope"}``. Success issues an opaque ``access_token`` with
  ``expires_in``. Every requested scope string is kept in ``scopes_requested``.

Issued, unexpired tokens are accepted as ``Authorization: Bearer ...`` on the Thrift endpoint (besides the static
token). Secrets are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from typing import Optional
from urllib.parse import parse_qs

DISCOVERY_PATH = "/oidc/.well-known/oauth-authorization-server"
HOST_METADATA_PATH = "/.well-known/databricks-config"
TOKEN_PATH = "/oidc/v1/token"
AUTHORIZE_PATH = "/oidc/v1/authorize"
SCOPES = ("all-apis", "sql", "offline_access")

Reply = tuple[int, dict]


class OAuthServer:
    """Client registry, token endpoint and issued-token store (thread-safe)."""

    def __init__(self, clients: dict[str, str], token_ttl_s: int = 3600) -> None:
        self.clients = dict(clients)
        self.token_ttl_s = int(token_ttl_s)
        self.tokens_issued = 0
        self.rejections = 0
        self.scopes_requested: list[str] = []
        self._tokens: dict[str, float] = {}  # access token -> expiry (time.time())
        self._clients_of: dict[str, str] = {}  # access token -> the client id it was issued to
        self._lock = threading.Lock()

    # ---- HTTP hooks (return None when the path is not an OAuth path) ----
    def handle_get(self, path: str, base_url: str) -> Optional[Reply]:
        """The discovery documents, else None."""
        path = path.split("?")[0].rstrip("/")
        if path == DISCOVERY_PATH:
            return 200, {
                "issuer": f"{base_url}/oidc",
                "authorization_endpoint": f"{base_url}{AUTHORIZE_PATH}",
                "token_endpoint": f"{base_url}{TOKEN_PATH}",
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": list(SCOPES),
            }
        if path == HOST_METADATA_PATH:
            return 200, {"oidc_endpoint": f"{base_url}/oidc", "workspace_id": "1234567890"}
        return None

    def handle_post(self, path: str, authorization: Optional[str], body: bytes) -> Optional[Reply]:
        """The token endpoint, else None."""
        if path.split("?")[0].rstrip("/") != TOKEN_PATH:
            return None
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, secret = _basic_credentials(authorization) or (form.get("client_id"), form.get("client_secret"))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "only grant_type=client_credentials is supported"}
        scope = form.get("scope") or ""
        with self._lock:
            self.scopes_requested.append(scope)
        if not set(scope.split()) <= set(SCOPES):
            with self._lock:
                self.rejections += 1
            return 400, {"error": "invalid_scope", "error_description": f"unknown scope in {scope[:60]!r}"}
        expected = self.clients.get(client_id or "")
        if expected is None or not hmac.compare_digest(expected.encode(), (secret or "").encode()):
            with self._lock:
                self.rejections += 1
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        token = "fake-oauth-" + secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = time.time() + self.token_ttl_s
            self._clients_of[token] = client_id or ""
            self.tokens_issued += 1
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_s,
                     "scope": form.get("scope") or "all-apis"}

    def accepts(self, authorization: Optional[str]) -> bool:
        """True for ``Bearer <token>`` with a token this server issued and that has not expired."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            expiry = self._tokens.get(authorization[len("Bearer "):])
        return expiry is not None and expiry > time.time()

    def client_of(self, authorization: Optional[str]) -> Optional[str]:
        """The client id an issued ``Bearer`` token was given to (None when unknown)."""
        with self._lock:
            return self._clients_of.get((authorization or "").removeprefix("Bearer "))

    def expire_all(self) -> None:
        """Expire every issued token (simulates the end of their lifetime)."""
        with self._lock:
            self._tokens.clear()


def _basic_credentials(authorization: Optional[str]) -> Optional[tuple[str, str]]:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret  # as requests' HTTPBasicAuth sends them (not form-encoded first)


def encode(reply: Reply) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers for a reply (``no-store`` on token answers, as RFC 6749 asks)."""
    status, doc = reply
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="oidc"'
    return status, json.dumps(doc).encode(), headers


__all__ = ["OAuthServer", "DISCOVERY_PATH", "HOST_METADATA_PATH", "TOKEN_PATH", "encode"]
