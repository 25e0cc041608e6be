"""TLS over memory BIOs under any asyncio protocol, so a listener can accept any client chain.

``TlsServerProtocol`` sits on the raw TCP transport and drives a pyOpenSSL ``Connection``, which
holds all TLS state: ciphertext in through ``bio_write``, plaintext out through ``recv``, and
whatever OpenSSL wants to send drained from the outgoing BIO after every call. Once the
handshake completes it creates the application protocol and hands it a ``TlsTransport``.
Per connection: two small objects, one timer during the handshake, no tasks.
(``reference/tls-client-certificates.md`` measured this design; its pitfalls are noted inline.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from . import tls_bio
from .tls import TlsConfig

__all__ = ["HANDSHAKE_TIMEOUT", "TlsServerProtocol", "TlsTransport", "start_tls_server"]

log = logging.getLogger("opendps.tls")
HANDSHAKE_TIMEOUT = 30.0
CHUNK = 64 * 1024  # largest single read from either side of the TLS object
# Plaintext per SSL_write of a large write: 3 full records, whose ciphertext fits one CHUNK.
WRITE_SLICE = 3 * 16 * 1024
_Buffer = bytes | bytearray | memoryview
_BIO_SIZES = tls_bio.available  # else ask by catching WantReadError, as pyOpenSSL means it
TLS1_3 = getattr(SSL, "TLS1_3_VERSION", 0x304)

# asyncio.BaseEventLoop.sendfile() needs this to fall back to write() for a TLS transport.
try:
    from asyncio.constants import _SendfileMode

    _SENDFILE_FALLBACK: object = _SendfileMode.FALLBACK
except ImportError:  # pragma: no cover - private API moved
    _SENDFILE_FALLBACK = None


class TlsServerProtocol(asyncio.Protocol):
    """The raw-socket side: handshake, then decrypt into and encrypt for the app protocol."""

    __slots__ = ("_app", "_app_factory", "_chain", "_closing", "_conn", "_error",
                 "_handshake_timeout", "_held", "_loop", "_pending", "_pending_size", "_raw",
                 "_read_paused", "_timer")

    def __init__(self, app_factory: Callable[[], asyncio.BaseProtocol], context: SSL.Context,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._app_factory = app_factory
        # kept, not asked for: on Python 3.11 every ``asyncio.get_running_loop()`` is a
        # ``getpid`` system call (its fork check), and a connection asked several times
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._conn = SSL.Connection(context, None)  # None: memory BIOs, we move the bytes
        self._conn.set_accept_state()
        self._handshake_timeout = handshake_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._raw: asyncio.Transport | None = None
        self._app: Any = None  # made when the handshake completes, dropped when the socket is
        self._chain: list[x509.Certificate] | None = None
        self._closing = False  # no more plaintext in or out
        self._error: SSL.Error | None = None  # fatal: no SSL_shutdown, and the app is told
        self._read_paused = False
        # plaintext written during this loop iteration, encrypted together at its end
        self._pending: list[bytes] | None = None
        self._pending_size = 0
        # TLS 1.3's session tickets, queued in the BIO until something else is sent
        self._held = False

    # -- raw transport events ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = transport  # type: ignore[assignment]
        self._timer = self._loop.call_later(self._handshake_timeout, self._handshake_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._conn.bio_write(data)
        except SSL.Error as exc:  # pragma: no cover - a memory BIO grows instead
            self._fail(exc)
            return
        if self._app is None:
            self._handshake()
        else:
            self._read()

    def eof_received(self) -> bool:
        """A TCP FIN without close_notify: the same as close_notify for the application."""
        if self._app is None:
            log.debug("TLS peer %s closed during the handshake", self._peer())
            self._closing = True
        else:
            self._peer_closed()
        return False  # the raw transport closes itself after flushing our close_notify

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._app is not None:  # so exactly once, and no app ⇄ transport ⇄ protocol cycle
            app, self._app = self._app, None
            app.connection_lost(exc or self._error)
        self._raw = None  # nor a socket transport ⇄ protocol one: freed by reference counting

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app.resume_writing()

    # -- TLS ------------------------------------------------------------------------------
    def _handshake(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return
        except SSL.Error as exc:
            self._fail(exc)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._conn.get_protocol_version() == TLS1_3:
            # What OpenSSL queued on finishing is two session tickets, which resume nothing
            # here (no cache, no ticket keys) and which no client waits for: they stay in
            # the BIO and leave with the first answer (or the close_notify), one segment and
            # one system call fewer per connection. A TLS 1.2 server's Finished must go now.
            self._held = True
        else:
            self._flush()
        self._app = self._app_factory()
        self._app.connection_made(TlsTransport(self))
        self._read()  # the segment that finished the handshake may carry application data

    def _read(self) -> None:
        """Decrypt what the BIO holds into the app, one record per ``recv``, until it is empty."""
        conn = self._conn
        while not self._read_paused and not self._closing:
            try:
                data = conn.recv(CHUNK)
            except SSL.WantReadError:
                break
            except (SSL.ZeroReturnError, SSL.SysCallError):  # close_notify, or EOF in a record
                self._flush()
                self._peer_closed()
                return
            except SSL.Error as exc:
                self._fail(exc)
                return
            self._app.data_received(data)
            if _BIO_SIZES and not tls_bio.incoming(conn) and not conn.pending():
                break  # nothing left to decrypt: skip the recv that would only raise
        if not self._held and self._pending is None:
            self._flush()  # KeyUpdate answers and the like (pending writes flush it too)

    def _peer_closed(self) -> None:
        if self._closing:
            return
        keep_open = self._app.eof_received()
        if keep_open:
            log.debug("eof_received() returning true has no effect on a TLS transport")
        self._close()

    def _flush(self) -> None:
        """Move whatever OpenSSL queued (records, alerts, tickets) to the socket."""
        self._held = False
        raw, conn = self._raw, self._conn
        while True:
            size = min(tls_bio.outgoing(conn), CHUNK) if _BIO_SIZES else CHUNK
            if not size:
                return
            try:
                data = conn.bio_read(size)
            except SSL.WantReadError:  # empty: bio_read raises rather than return b""
                return
            if raw is not None and not raw.is_closing():
                raw.write(data)
            if len(data) < CHUNK:  # a memory BIO hands out all it has
                return

    def _fail(self, exc: SSL.Error) -> None:
        self._error = exc
        if self._app is None:
            log.info("TLS handshake with %s failed: %s", self._peer(), _reason(exc))
        else:
            log.info("TLS error on the connection with %s: %s", self._peer(), _reason(exc))
        self._flush()  # the alert, so the peer sees why rather than a reset
        self._close()

    def _handshake_timed_out(self) -> None:
        self._timer = None
        log.info("TLS handshake with %s timed out", self._peer())
        self._closing = True
        if self._raw is not None:
            self._raw.abort()

    def _peer(self) -> str:
        return str(self._raw.get_extra_info("peername") if self._raw is not None else None)

    # -- for TlsTransport ------------------------------------------------------------------
    def _write(self, data: _Buffer) -> None:
        """Small writes are gathered until the end of the loop iteration and then encrypted
        as one record and written with one send: an MQTT answer is often two packets (PUBACK
        and the response), a telemetry batch releases several PUBACKs per connection, and
        each record costs an SSL_write, a BIO read and a system call."""
        if self._closing or not data:
            return
        pending = self._pending
        if pending is None:
            if len(data) > WRITE_SLICE:
                self._encrypt(data)
                return
            self._pending = [bytes(data)]  # a copy of a bytearray: the caller may reuse it
            self._pending_size = len(data)
            self._loop.call_soon(self._write_pending)
            return
        pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size > WRITE_SLICE:
            self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_size = 0
        if not self._closing:
            self._encrypt(pending[0] if len(pending) == 1 else b"".join(pending))

    def _encrypt(self, data: _Buffer) -> None:
        conn = self._conn
        try:
            if len(data) <= WRITE_SLICE:
                conn.sendall(data)  # one SSL_write (partial writes are off), the BIO grows
            else:  # keep the BIO small: encrypt and hand over slice by slice (views: no copy)
                view = memoryview(data).cast("B")
                for start in range(0, len(view), WRITE_SLICE):
                    conn.sendall(view[start:start + WRITE_SLICE])
                    self._flush()
        except SSL.Error as exc:
            self._fail(exc)
            return
        self._flush()

    def _close(self) -> None:
        """Queue close_notify and close the socket once written; the peer's is not awaited."""
        if self._closing:
            return
        self._write_pending()  # what the app wrote goes out before close_notify
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._error is None and self._app is not None:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass
            self._flush()
        if self._raw is not None:
            self._raw.close()

    def _abort(self) -> None:
        self._closing = True
        self._pending = None
        if self._raw is not None:
            self._raw.abort()

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if self._raw is not None:
                self._raw.resume_reading()
            # records already in the BIO arrived while paused; not from inside the app's call
            self._loop.call_soon(self._read_if_open)

    def _read_if_open(self) -> None:
        if not self._closing and self._app is not None and not self._read_paused:
            self._read()

    def _peer_chain(self) -> list[x509.Certificate]:
        """Leaf first: on a server OpenSSL's peer chain leaves the leaf out."""
        if self._chain is None:  # (as_cryptography= would need pyOpenSSL 24.3)
            leaf = self._conn.get_peer_certificate()
            rest = self._conn.get_peer_cert_chain() or []
            self._chain = ([] if leaf is None
                           else [c.to_cryptography() for c in (leaf, *rest)])
        return list(self._chain)


class TlsTransport(asyncio.Transport):
    """What the application protocol sees: plaintext in and out, TLS facts in extra info."""

    __slots__ = ("_tls",)
    _sendfile_compatible = _SENDFILE_FALLBACK

    def __init__(self, tls: TlsServerProtocol) -> None:
        super().__init__()
        self._tls = tls

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        tls, conn = self._tls, self._tls._conn
        if name == "peercert_chain":
            return tls._peer_chain()
        if name == "ssl_object":
            return conn
        if name == "sslcontext":
            return conn.get_context()
        if name == "cipher":
            return (conn.get_cipher_name(), conn.get_cipher_version(), conn.get_cipher_bits())
        if name == "tls_version":
            return conn.get_protocol_version_name()
        if name == "alpn_protocol":
            proto = conn.get_alpn_proto_negotiated()
            return proto.decode("ascii") if proto else None
        raw = tls._raw
        return raw.get_extra_info(name, default) if raw is not None else default

    def write(self, data: _Buffer) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        self._tls._write(data)

    def writelines(self, list_of_data: Iterable[_Buffer]) -> None:
        """Small pieces (HTTP head + body) go out as one record instead of one record each."""
        pieces = list(list_of_data)
        if sum(len(p) for p in pieces) <= WRITE_SLICE:
            self._tls._write(b"".join(pieces))
        else:
            for piece in pieces:
                self._tls._write(piece)

    def can_write_eof(self) -> bool:
        return False  # TLS 1.2 has no half-close

    def write_eof(self) -> None:
        raise NotImplementedError("TLS transports cannot half-close")

    def close(self) -> None:
        self._tls._close()

    def abort(self) -> None:
        self._tls._abort()

    def is_closing(self) -> bool:
        raw = self._tls._raw
        return self._tls._closing or raw is None or raw.is_closing()

    def pause_reading(self) -> None:
        tls = self._tls
        if not tls._read_paused and not tls._closing:
            tls._read_paused = True
            if tls._raw is not None:
                tls._raw.pause_reading()

    def resume_reading(self) -> None:
        self._tls._resume_reading()

    def is_reading(self) -> bool:
        return not self._tls._read_paused and not self.is_closing()

    def get_write_buffer_size(self) -> int:
        tls = self._tls
        raw = tls._raw
        return tls._pending_size + (raw.get_write_buffer_size() if raw is not None else 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._tls._raw is not None:
            self._tls._raw.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        raw = self._tls._raw
        return raw.get_write_buffer_limits() if raw is not None else (0, 0)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls._app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls._app

    @property
    def _protocol_paused(self) -> bool:
        """Read by asyncio's sendfile fallback (as on its own SSL transport)."""
        raw = self._tls._raw
        return bool(getattr(raw, "_protocol_paused", False))

    def __repr__(self) -> str:
        return f"<TlsTransport {self.get_extra_info('peername')} closing={self.is_closing()}>"


def _reason(exc: SSL.Error) -> str:
    """One line from pyOpenSSL's list of (library, function, reason) tuples."""
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args and all(isinstance(a, tuple) for a in args):
        return "; ".join(str(a[-1]) for a in args)
    return " ".join(str(a) for a in exc.args) or type(exc).__name__


async def start_tls_server(protocol_factory: Callable[[], asyncio.BaseProtocol],
                           host: str | Sequence[str] | None,
                           port: int, config: TlsConfig | SSL.Context, *,
                           handshake_timeout: float = HANDSHAKE_TIMEOUT, backlog: int = 1024,
                           reuse_port: bool = False) -> asyncio.Server:
    """Listen on ``host:port``; each connection's app protocol is made after its handshake."""
    def context() -> SSL.Context:  # read per connection, so a reloaded certificate applies
        return config.context if isinstance(config, TlsConfig) else config

    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: TlsServerProtocol(protocol_factory, context(), handshake_timeout, loop),
        host, port, backlog=backlog, reuse_address=True, reuse_port=reuse_port or None)
