"""Client TLS over memory BIOs under any asyncio protocol: the server's ``TlsServerProtocol``
(``transport/tls_transport.py``) mirrored for the connecting side. The stdlib loop's SSL
transport is pure Python and the stdlib ``ssl`` links a slower OpenSSL, which is why the load
generator uses this.

``TlsClientProtocol`` sits on the raw TCP transport and drives a pyOpenSSL ``Connection`` in
connect state: it sends the ClientHello as soon as the socket is up, and once the handshake
completes and the host name is checked it creates the application protocol and hands it a
``TlsClientTransport``. Per connection: two small objects and one future, no tasks, no timer
(the caller bounds the whole exchange).

Every write goes out at once, as the SDKs' clients do: coalescing a PUBACK with the next
PUBLISH would save the client ~0.15 ms per MQTT registration, but the server would then be
measured reading fewer segments than real devices send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from OpenSSL import SSL

from .tls_client_context import TlsClientContext, TlsError

__all__ = ["TlsClientProtocol", "TlsClientTransport", "open_tls"]

CHUNK = 64 * 1024  # largest single read from either side of the TLS object
WRITE_SLICE = 3 * 16 * 1024  # plaintext per SSL_write of a large write: 3 full records
_Buffer = bytes | bytearray | memoryview
P = TypeVar("P", bound=asyncio.BaseProtocol)


class TlsClientProtocol(asyncio.Protocol):
    """The raw-socket side: handshake, then decrypt into and encrypt for the app protocol."""

    __slots__ = ("_app", "_app_factory", "_closing", "_conn", "_error", "_host", "_raw",
                 "_read_paused", "_tls", "_waiter")

    def __init__(self, app_factory: Callable[[], asyncio.BaseProtocol], tls: TlsClientContext,
                 server_hostname: str, waiter: asyncio.Future[Any]) -> None:
        self._app_factory = app_factory
        self._tls = tls
        self._host = server_hostname
        self._conn = tls.connection(server_hostname)
        self._waiter = waiter  # (transport, app) once the handshake and the name check pass
        self._raw: asyncio.Transport | None = None
        self._app: Any = None
        self._closing = False
        self._error: Exception | None = None
        self._read_paused = False

    # -- raw transport events ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = transport  # type: ignore[assignment]
        self._handshake()  # the ClientHello

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._conn.bio_write(data)
        if self._app is None:
            self._handshake()
        else:
            self._read()

    def eof_received(self) -> bool:
        if self._app is None:
            self._fail_handshake(ConnectionResetError(
                f"{self._host} closed the connection during the TLS handshake"))
        else:
            self._peer_closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if not self._waiter.done():
            self._waiter.set_exception(self._error or exc or ConnectionResetError(
                f"the connection to {self._host} closed during the TLS handshake"))
        if self._app is not None:
            app, self._app = self._app, None
            app.connection_lost(exc or self._error)

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app.resume_writing()

    # -- TLS ------------------------------------------------------------------------------
    def _handshake(self) -> None:
        conn = self._conn
        try:
            conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return
        except SSL.Error as exc:
            self._flush()  # our alert, so the server logs why
            self._fail_handshake(self._tls.describe_failure(conn, self._host, exc))
            return
        self._flush()  # our Finished
        try:
            self._tls.check_host(conn, self._host)
        except TlsError as exc:
            self._fail_handshake(exc)
            return
        self._app = self._app_factory()
        transport = TlsClientTransport(self)
        self._app.connection_made(transport)
        if not self._waiter.done():
            self._waiter.set_result((transport, self._app))
        self._read()  # the segment that finished the handshake may carry application data

    def _fail_handshake(self, exc: Exception) -> None:
        self._error = exc
        self._closing = True
        if not self._waiter.done():
            self._waiter.set_exception(exc)
        if self._raw is not None:
            self._raw.close()

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
        self._flush()  # KeyUpdate answers and the like

    def _peer_closed(self) -> None:
        if self._closing:
            return
        self._app.eof_received()
        self._close()

    def _flush(self) -> None:
        """Move whatever OpenSSL queued (records, alerts) to the socket."""
        raw, conn = self._raw, self._conn
        while True:
            try:
                data = conn.bio_read(CHUNK)
            except SSL.WantReadError:  # empty: bio_read raises rather than return b""
                return
            if raw is not None and not raw.is_closing():
                raw.write(data)
            if len(data) < CHUNK:  # a memory BIO hands out all it has
                return

    def _fail(self, exc: SSL.Error) -> None:
        self._error = TlsError(f"TLS error on the connection to {self._host}: {exc}",
                               "TLS_ERROR")
        self._flush()
        self._close()

    # -- for TlsClientTransport ------------------------------------------------------------
    def _write(self, data: _Buffer) -> None:
        if self._closing or not data:
            return
        conn = self._conn
        try:
            if len(data) <= WRITE_SLICE:
                conn.sendall(data)
            else:
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
        self._closing = True
        if self._error is None:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass
            self._flush()
        if self._raw is not None:
            self._raw.close()

    def _abort(self) -> None:
        self._closing = True
        if self._raw is not None:
            self._raw.abort()

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if self._raw is not None:
                self._raw.resume_reading()
            asyncio.get_running_loop().call_soon(self._read_if_open)

    def _read_if_open(self) -> None:
        if not self._closing and self._app is not None and not self._read_paused:
            self._read()


class TlsClientTransport(asyncio.Transport):
    """What the application protocol sees: plaintext in and out, TLS facts in extra info."""

    __slots__ = ("_tls",)

    def __init__(self, tls: TlsClientProtocol) -> None:
        super().__init__()
        self._tls = tls

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._tls._conn
        if name == "peercert_chain":
            return conn.get_peer_cert_chain(as_cryptography=True) or []
        if name == "ssl_object":
            return conn
        if name == "cipher":
            return (conn.get_cipher_name(), conn.get_cipher_version(), conn.get_cipher_bits())
        if name == "tls_version":
            return conn.get_protocol_version_name()
        if name == "tls_group":
            return conn.get_group_name()
        raw = self._tls._raw
        return raw.get_extra_info(name, default) if raw is not None else default

    def write(self, data: _Buffer) -> None:
        self._tls._write(data)

    def writelines(self, list_of_data: Iterable[_Buffer]) -> None:
        self._tls._write(b"".join(list_of_data))

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
        raw = self._tls._raw
        return raw.get_write_buffer_size() if raw is not None else 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls._app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls._app

    def __repr__(self) -> str:
        return f"<TlsClientTransport {self.get_extra_info('peername')}>"


async def open_tls(app_factory: Callable[[], P], host: str, port: int, tls: TlsClientContext,
                   server_hostname: str | None = None) -> tuple[TlsClientTransport, P]:
    """TCP to ``host:port``, then TLS checked against ``server_hostname`` (default ``host``);
    the transport and the app protocol made once both passed. Cancelling aborts the socket."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[tuple[TlsClientTransport, P]] = loop.create_future()
    raw, _ = await loop.create_connection(
        lambda: TlsClientProtocol(app_factory, tls, server_hostname or host, waiter), host, port)
    try:
        return await waiter
    except BaseException:
        raw.abort()
        raise
