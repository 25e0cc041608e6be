"""TLS 1.3: the session tickets OpenSSL queues on finishing a handshake leave in the same
segment as the server's first answer (or its close_notify), not in one of their own; a TLS 1.2
server's Finished, which the client waits for, goes at once."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

from opendps.transport.tls_transport import TlsServerProtocol

from .conftest import EchoServer
from .pki_files import PkiFiles


class _Counted:
    """The raw transport, with every ``write`` recorded (sizes, in order)."""

    def __init__(self, raw: Any, writes: list[int]) -> None:
        self._raw, self._writes = raw, writes

    def write(self, data: bytes) -> None:
        self._writes.append(len(data))
        self._raw.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@pytest.fixture
def raw_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    writes: list[int] = []
    original = TlsServerProtocol.connection_made

    def counted(self: TlsServerProtocol, transport: asyncio.BaseTransport) -> None:
        original(self, _Counted(transport, writes))  # type: ignore[arg-type]

    monkeypatch.setattr(TlsServerProtocol, "connection_made", counted)
    return writes


async def _exchange(port: int, ca_file: str, *, together: bool = True,
                    send: bytes = b"hello", version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
                    ) -> tuple[bytes, bool]:
    """A client on memory BIOs over a plain socket, so what leaves in one segment is up to
    it: its Finished and ``send`` together, or the Finished first. Reads until the echo of
    ``send`` or the server's close_notify; returns what it read and whether a session ticket
    had arrived by then."""
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ctx.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await loop.sock_sendall(sock, outgoing.read())
                incoming.write(await loop.sock_recv(sock, 65536))
        if not together:
            await loop.sock_sendall(sock, outgoing.read())  # the Finished alone
            await asyncio.sleep(0.2)  # the server has finished its handshake by now
        tls.write(send)
        await loop.sock_sendall(sock, outgoing.read())
        received = b""
        async with asyncio.timeout(10):
            while len(received) < len(send):
                try:
                    chunk = tls.read(len(send) - len(received))
                    if not chunk:  # the server's close_notify
                        break
                    received += chunk
                except ssl.SSLWantReadError:
                    data = await loop.sock_recv(sock, 65536)
                    if not data:
                        raise AssertionError("the server closed without close_notify") from None
                    incoming.write(data)
        return received, bool(tls.session is not None and tls.session.has_ticket)
    finally:
        sock.close()


@pytest.mark.parametrize("together", [True, False], ids=["with-finished", "after-finished"])
async def test_tickets_leave_with_the_first_answer(
        test_pki: PkiFiles, echo: EchoServer, raw_writes: list[int], together: bool) -> None:
    echoed, ticketed = await _exchange(echo.port, str(test_pki.server_ca_file),
                                       together=together)
    assert echoed == b"hello"
    assert ticketed  # the tickets did arrive, ahead of the echo in the same segment
    # the handshake's flight, then the tickets and the echo together (they were two writes)
    assert len(raw_writes) == 2, raw_writes


async def test_tickets_leave_with_the_close_notify_when_nothing_was_answered(
        test_pki: PkiFiles, echo: EchoServer, raw_writes: list[int]) -> None:
    received, ticketed = await _exchange(echo.port, str(test_pki.server_ca_file),
                                         send=b"CLOSE")
    assert received == b""  # the echo app closes without answering
    assert ticketed
    assert len(raw_writes) == 2, raw_writes  # the flight, then tickets + close_notify


async def test_a_tls_1_2_servers_finished_is_not_held(
        test_pki: PkiFiles, echo: EchoServer, raw_writes: list[int]) -> None:
    # the client waits for the server's Finished before it may send anything
    echoed, _ = await _exchange(echo.port, str(test_pki.server_ca_file),
                                version=ssl.TLSVersion.TLSv1_2)
    assert echoed == b"hello"
    assert len(raw_writes) == 3, raw_writes  # ServerHello..Done, CCS + Finished, the echo
