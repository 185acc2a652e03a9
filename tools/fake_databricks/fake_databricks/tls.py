"""Self-signed TLS material for the fake warehouse (generated with the ``openssl`` command line tool)."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
import tempfile

logger = logging.getLogger(__name__)


def make_self_signed(directory: str | None = None, host: str = "127.0.0.1") -> tuple[str, str]:
    """Create an EC key and a self-signed certificate valid for ``host``, 127.0.0.1 and localhost.

    Returns ``(cert_file, key_file)``; the certificate doubles as the CA file clients must trust.
    """
    if shutil.which("openssl") is None:
        raise RuntimeError("TLS mode needs the openssl command line tool")
    directory = directory or tempfile.mkdtemp(prefix="fake-warehouse-tls-")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    san = "subjectAltName=IP:127.0.0.1,DNS:localhost" + (f",IP:{host}" if host not in ("127.0.0.1", "localhost") else "")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={host}", "-addext", san,
         "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True, timeout=30,
    )
    logger.debug("generated TLS cert %s", cert)
    return cert, key


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """Server-side SSL context for the given certificate and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
