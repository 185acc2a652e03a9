"""A tiny identity-injecting reverse proxy for the browser tests, standing in for the Databricks Apps proxy.

Chromium does not send playwright's ``extra_http_headers`` on the WebSocket upgrade (measured: Streamlit's
``st.context.headers`` never saw them), and Streamlit reads identity headers from exactly that request. A real
deployment has a proxy in front that sets ``X-Forwarded-Email``; this one does the same: it drops any identity header
the client sent and sets its own on the first request of every connection (enough for the WebSocket handshake,
which always opens its own connection), then pipes bytes both ways.
"""

from __future__ import annotations

import socket
import threading


class HeaderInjectingProxy:
    """Listens on 127.0.0.1:<free port>; forwards to 127.0.0.1:``target_port`` adding ``headers`` (a list value is
    sent as several lines of the same header)."""

    def __init__(self, target_port: int, headers: dict[str, str | list[str]]) -> None:
        self.target_port = target_port
        self.headers = headers
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _rewrite(self, head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        names = {name.lower().encode() for name in self.headers}
        kept = [lines[0]] + [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() not in names]
        for name, value in self.headers.items():  # a list value: one header line per entry (latin-1, as HTTP/1.1)
            kept += [f"{name}: {line}".encode("latin-1") for line in (value if isinstance(value, list) else [value])]
        return b"\r\n".join(kept)

    def _handle(self, client: socket.socket) -> None:
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    client.close()
                    return
                data += chunk
            head, rest = data.split(b"\r\n\r\n", 1)
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            upstream.sendall(self._rewrite(head) + b"\r\n\r\n" + rest)
        except OSError:
            client.close()
            return
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
