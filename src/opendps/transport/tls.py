"""One TLS factory for every listener: TLS 1.2 and 1.3 (the Python SDK pins 1.2, §8.6).

Client certificates are not requested yet; X.509 attestation (issue 3) replaces this with a
pyOpenSSL context that accepts any chain and leaves trust to the engine."""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_path), str(key_path))
    ctx.set_alpn_protocols(["http/1.1", "mqtt"])
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx
