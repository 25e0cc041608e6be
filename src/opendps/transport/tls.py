"""One TLS factory for every listener (MQTT 8883, HTTPS and MQTT/WebSocket 443).

TLS 1.2 and 1.3: the Python SDK pins 1.2 (protocol.md §8.6). Every handshake asks for a client
certificate and accepts whatever chain arrives, or none: the handshake proves possession of the
leaf key, and the provisioning engine judges the chain, answering with DPS errors rather than TLS
alerts (ARCHITECTURE, "Hard facts"). No trust store is loaded, so nothing here grows with the
number of enrollments. Python's ``ssl`` has no verify callback, hence pyOpenSSL
(``reference/tls-client-certificates.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from OpenSSL import SSL, crypto

__all__ = ["ALPN_PROTOCOLS", "TlsConfig", "server_context"]

# Server preference order, as the stdlib context used to choose.
ALPN_PROTOCOLS: tuple[bytes, ...] = (b"http/1.1", b"mqtt")
# With VERIFY_PEER, OpenSSL fails resumed handshakes ("session id context uninitialized")
# unless one is set; kept so that turning resumption on later does not break handshakes.
SESSION_ID_CONTEXT = b"opendps"
_MODE_ENABLE_PARTIAL_WRITE = 0x1  # SSL_MODE_ENABLE_PARTIAL_WRITE, not exported by pyOpenSSL
_OP_NO_RENEGOTIATION = getattr(SSL, "OP_NO_RENEGOTIATION", 0x40000000)  # newer pyOpenSSLs only


@dataclass
class TlsConfig:
    """What a TLS listener needs; the context is built once and shared by all listeners, and
    rebuilt by ``reload`` when the certificate changes (a new hub host name needs a SAN):
    connections made afterwards use the new one."""

    cert_path: Path
    key_path: Path
    _context: SSL.Context | None = field(default=None, repr=False)

    @property
    def context(self) -> SSL.Context:
        if self._context is None:
            self._context = server_context(self.cert_path, self.key_path)
        return self._context

    def reload(self) -> None:
        self._context = server_context(self.cert_path, self.key_path)


def server_context(cert_path: Path, key_path: Path) -> SSL.Context:
    """A server context for ``cert_path`` (leaf then CA, sent as a chain) and ``key_path``."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)  # and up to 1.3, the library's maximum
    ctx.set_options(SSL.OP_NO_COMPRESSION | _OP_NO_RENEGOTIATION
                    | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_TICKET)
    # No resumption. A session restored from a ticket knows the client's leaf but not its
    # intermediates, so the engine would judge a cut chain; a server-side cache keeps the chain
    # but holds ~9 KB per session (20,480 of them) and is per worker. Devices register over
    # one-shot connections, so every handshake is a full one (TLS 1.3 still sends tickets, which
    # then resume nothing).
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    # Idle hub connections are long-lived: give the 2 x 17 KB record buffers back between reads.
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    # pyOpenSSL turns on partial writes (one record per SSL_write); a memory BIO never blocks,
    # so let one SSL_write take the whole buffer (the transport's sendall copes either way).
    if hasattr(ctx, "clear_mode"):  # pyOpenSSL >= 25.3
        ctx.clear_mode(_MODE_ENABLE_PARTIAL_WRITE)
    ctx.use_certificate_chain_file(str(cert_path))
    ctx.use_privatekey_file(str(key_path), crypto.FILETYPE_PEM)
    ctx.check_privatekey()
    ctx.set_alpn_select_callback(_select_alpn)
    # Request a certificate, never require one (symmetric-key devices send none), trust any:
    # an empty CA list is fine, OpenSSL-based clients send their configured certificate anyway.
    ctx.set_verify(SSL.VERIFY_PEER, _accept_any_chain)
    ctx.set_session_id(SESSION_ID_CONTEXT)
    return ctx


def _accept_any_chain(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                      ok: int) -> bool:
    """Trust is the engine's decision; an exception here would abort the handshake."""
    return True


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes | object:
    for proto in ALPN_PROTOCOLS:
        if proto in offered:
            return proto
    return SSL.NO_OVERLAPPING_PROTOCOLS  # carry on without ALPN, as the stdlib server did
