"""Writes gathered per loop iteration: one record for what the app wrote together, in order,
flushed before close_notify, counted in the write-buffer size."""

from __future__ import annotations

import asyncio

import pytest

from opendps.transport import tls_transport
from opendps.transport.tls_transport import TlsServerProtocol, start_tls_server

from .conftest import client_context, open_tls
from .pki_files import PkiFiles


class Scripted(asyncio.Protocol):
    """On any data: run ``script(transport)``."""

    def __init__(self, script, seen: list) -> None:  # type: ignore[no-untyped-def]
        self.script, self.seen = script, seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.seen.append(self.script(self.transport))


async def _serve(test_pki: PkiFiles, script, seen: list):  # type: ignore[no-untyped-def]
    server = await start_tls_server(lambda: Scripted(script, seen), "127.0.0.1", 0,
                                    test_pki.tls)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
def encrypts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every plaintext handed to OpenSSL in one go."""
    sizes: list[int] = []
    original = TlsServerProtocol._encrypt

    def counted(self: TlsServerProtocol, data: bytes) -> None:
        sizes.append(len(data))
        original(self, data)

    monkeypatch.setattr(TlsServerProtocol, "_encrypt", counted)
    return sizes


async def test_writes_of_one_iteration_become_one_record(test_pki: PkiFiles,
                                                         encrypts: list[int]) -> None:
    seen: list = []

    def script(t):  # type: ignore[no-untyped-def]
        t.write(b"one,")
        t.writelines([b"two,", bytearray(b"three,")])
        t.write(memoryview(b"four"))
        return t.get_write_buffer_size()

    server, port = await _serve(test_pki, script, seen)
    try:
        reader, writer = await open_tls(port, client_context(test_pki))
        writer.write(b"go")
        assert await reader.readexactly(18) == b"one,two,three,four"
        assert encrypts == [18]
        assert seen == [18]  # pending plaintext counts as buffered
        writer.close()
    finally:
        server.close()


async def test_a_large_write_keeps_its_place_and_close_flushes_first(
        test_pki: PkiFiles, encrypts: list[int]) -> None:
    big = bytes(range(256)) * (tls_transport.WRITE_SLICE // 128)  # two slices

    def script(t):  # type: ignore[no-untyped-def]
        t.write(b"head|")
        t.write(big)
        t.write(b"|tail")
        t.close()  # before the loop's next iteration: nothing may be lost

    server, port = await _serve(test_pki, script, [])
    try:
        reader, writer = await open_tls(port, client_context(test_pki))
        writer.write(b"go")
        async with asyncio.timeout(10):
            got = await reader.read(-1)  # to EOF (close_notify)
        assert got == b"head|" + big + b"|tail"
        assert sum(encrypts) == len(got)
        writer.close()
    finally:
        server.close()


async def test_an_abort_drops_what_was_not_yet_sent(test_pki: PkiFiles,
                                                    encrypts: list[int]) -> None:
    def script(t):  # type: ignore[no-untyped-def]
        t.write(b"never sent")
        t.abort()

    server, port = await _serve(test_pki, script, [])
    try:
        reader, writer = await open_tls(port, client_context(test_pki))
        writer.write(b"go")
        async with asyncio.timeout(10):
            try:
                got = await reader.read(-1)
            except ConnectionError:
                got = b""
        assert got == b"" and encrypts == []
        writer.close()
    finally:
        server.close()
