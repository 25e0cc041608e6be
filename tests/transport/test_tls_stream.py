"""After the handshake: big writes both ways, flow control, closing from either side, abort,
and many connections at once."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl

import pytest
from OpenSSL import SSL

from opendps.transport.tls_transport import start_tls_server

from .conftest import EchoServer, client_context, no_tracebacks, open_tls
from .pki_files import PkiFiles

FIVE_MB = 5 * 1024 * 1024


async def test_five_megabytes_both_ways(echo: EchoServer, test_pki: PkiFiles) -> None:
    payload = bytes(range(256)) * (FIVE_MB // 256)
    reader, writer = await open_tls(echo.port, client_context(test_pki))

    async def send() -> None:
        writer.write(payload)
        await writer.drain()

    sending = asyncio.create_task(send())
    got = await reader.readexactly(len(payload))
    await sending
    assert got == payload
    app = await echo.first_app()
    assert app.received == len(payload)
    writer.close()
    await writer.wait_closed()


async def test_a_slow_reader_pauses_the_writer(echo: EchoServer, test_pki: PkiFiles) -> None:
    """The raw socket's pause_writing / resume_writing reach the application protocol."""
    reader, writer = await open_tls(echo.port, client_context(test_pki))
    writer.write(f"SEND {FIVE_MB}".encode())
    app = await echo.first_app()
    async with asyncio.timeout(5):
        await app.write_paused.wait()
    assert app.transport is not None
    low, high = app.transport.get_write_buffer_limits()  # asyncio's order
    assert app.buffered_at_pause > high >= low
    assert await reader.readexactly(FIVE_MB) == bytes(FIVE_MB)
    assert app.write_resumes == app.write_pauses
    app.transport.set_write_buffer_limits(high=1 << 20)
    assert app.transport.get_write_buffer_limits()[1] == 1 << 20
    writer.close()
    await writer.wait_closed()


class Pausing(asyncio.Protocol):
    """Pauses reading after the first piece of data, to show nothing more arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.got = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None and self.transport.is_reading()
        self.data += data
        self.got.set()
        self.transport.pause_reading()


async def test_pause_reading_holds_plaintext_back(test_pki: PkiFiles) -> None:
    apps: list[Pausing] = []
    server = await start_tls_server(lambda: apps.append(Pausing()) or apps[-1],  # type: ignore[func-returns-value]
                                    "127.0.0.1", 0, test_pki.tls)
    try:
        _, writer = await open_tls(server.sockets[0].getsockname()[1], client_context(test_pki))
        writer.write(b"a" * 100_000)  # several records
        await writer.drain()
        await asyncio.sleep(0.2)
        app = apps[0]
        assert app.transport is not None
        assert 0 < len(app.data) < 100_000 and not app.transport.is_reading()
        while len(app.data) < 100_000:
            app.got.clear()
            app.transport.resume_reading()
            async with asyncio.timeout(5):
                await app.got.wait()
        assert bytes(app.data) == b"a" * 100_000
        writer.close()
    finally:
        server.close()


async def test_server_close_flushes_then_sends_eof(echo: EchoServer, test_pki: PkiFiles) -> None:
    reader, writer = await open_tls(echo.port, client_context(test_pki, test_pki.leaf_only))
    writer.write(b"SEND+CLOSE 1000000")
    assert await reader.readexactly(1_000_000) == bytes(1_000_000)
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # close_notify, then the socket closes
    app = await echo.first_app()
    async with asyncio.timeout(5):
        assert await app.lost is None
    assert app.transport is not None and app.transport.is_closing()
    app.transport.write(b"ignored after close")  # no error, nothing sent
    await asyncio.sleep(0.05)
    assert app.losses == [None] and app.eofs == 0
    writer.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_client_close_reaches_the_app_as_eof_then_lost(
        echo: EchoServer, test_pki: PkiFiles, version: ssl.TLSVersion,
        tls_logs: pytest.LogCaptureFixture) -> None:
    reader, writer = await open_tls(echo.port, client_context(test_pki, None, version))
    writer.write(b"hi")
    await reader.readexactly(2)
    writer.close()
    await writer.wait_closed()
    app = await echo.first_app()
    async with asyncio.timeout(5):
        assert await app.lost is None
    await asyncio.sleep(0.05)
    assert app.eofs == 1 and app.losses == [None]
    no_tracebacks(tls_logs)


async def test_plain_tcp_close_without_close_notify(echo: EchoServer,
                                                    test_pki: PkiFiles) -> None:
    """A truncated stream (FIN without close_notify) is an EOF for the app, not an error."""
    reader, writer = await open_tls(echo.port, client_context(test_pki))
    writer.write(b"hi")
    await reader.readexactly(2)
    writer.transport.abort()
    app = await echo.first_app()
    async with asyncio.timeout(5):
        await app.lost
    await asyncio.sleep(0.05)
    assert len(app.losses) == 1


def _corrupt_a_record(port: int, ctx: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"hi")
        assert tls.recv(2) == b"hi"
        os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + bytes(32))  # fails authentication
        try:
            tls.recv(10)
        except (ssl.SSLError, ConnectionResetError):
            pass


async def test_a_bad_record_after_the_handshake(echo: EchoServer, test_pki: PkiFiles,
                                                tls_logs: pytest.LogCaptureFixture) -> None:
    """The app learns why in connection_lost; the log gets one line, no traceback."""
    await asyncio.to_thread(_corrupt_a_record, echo.port, client_context(test_pki))
    app = await echo.first_app()
    async with asyncio.timeout(5):
        assert isinstance(await app.lost, SSL.Error)
    no_tracebacks(tls_logs)
    ours = [r for r in tls_logs.records if r.name == "opendps.tls"]
    assert len(ours) == 1 and "TLS error on the connection" in ours[0].getMessage()


async def test_abort(echo: EchoServer, test_pki: PkiFiles) -> None:
    reader, writer = await open_tls(echo.port, client_context(test_pki))
    writer.write(b"ABORT")
    async with asyncio.timeout(5):
        try:
            assert await reader.read() == b""
        except (ConnectionResetError, ssl.SSLError):
            pass
    app = await echo.first_app()
    async with asyncio.timeout(5):
        await app.lost
    await asyncio.sleep(0.05)
    assert len(app.losses) == 1 and app.eofs == 0
    assert app.transport is not None and app.transport.is_closing()
    writer.close()


async def test_two_hundred_concurrent_connections(echo: EchoServer, test_pki: PkiFiles) -> None:
    with_chain = client_context(test_pki, test_pki.leaf_and_intermediate)
    without = client_context(test_pki)

    async def one(i: int) -> None:
        reader, writer = await open_tls(echo.port, with_chain if i % 2 else without)
        message = f"connection {i}".encode()
        writer.write(message)
        assert await reader.readexactly(len(message)) == message
        writer.close()
        await writer.wait_closed()

    async with asyncio.timeout(60):
        await asyncio.gather(*(one(i) for i in range(200)))
    assert len(echo.apps) == 200
    assert sorted(len(app.chain) for app in echo.apps) == [0] * 100 + [2] * 100
    async with asyncio.timeout(5):
        await asyncio.gather(*(app.lost for app in echo.apps))
    assert all(app.losses == [None] for app in echo.apps)
