"""Handshakes: both TLS versions, every kind of client chain, and clients that are not TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
from cryptography.x509.oid import NameOID

from .conftest import EchoServer, client_context, no_tracebacks, open_tls, start_echo
from .pki_files import REGISTRATION_ID, DeviceFiles, PkiFiles

VERSIONS = [pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"),
            pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3")]
CHAINS = ["none", "leaf_only", "leaf_and_intermediate", "expired", "untrusted"]


def device(test_pki: PkiFiles, which: str) -> DeviceFiles | None:
    return None if which == "none" else getattr(test_pki, which)


async def echo_once(port: int, ctx: ssl.SSLContext, payload: bytes = b"hello") -> None:
    reader, writer = await open_tls(port, ctx)
    writer.write(payload)
    assert await reader.readexactly(len(payload)) == payload
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("which", CHAINS)
async def test_any_client_chain_is_accepted_and_exposed(echo: EchoServer, test_pki: PkiFiles,
                                                        version: ssl.TLSVersion,
                                                        which: str) -> None:
    """Expired and untrusted chains too: the application judges, the handshake only proves
    possession of the leaf key."""
    dev = device(test_pki, which)
    await echo_once(echo.port, client_context(test_pki, dev, version))
    app = await echo.first_app()
    expected = list(dev.sent) if dev else []
    assert app.chain == expected  # leaf first, intermediates in the order sent
    if dev:
        cn = app.chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == REGISTRATION_ID
    assert app.transport is not None
    assert app.transport.get_extra_info("tls_version") == version.name.replace("v1_", "v1.")


async def test_extra_info(echo: EchoServer, test_pki: PkiFiles) -> None:
    ctx = client_context(test_pki, test_pki.leaf_only)
    ctx.set_alpn_protocols(["mqtt"])
    reader, writer = await open_tls(echo.port, ctx)
    writer.write(b"x")
    await reader.readexactly(1)
    app = await echo.first_app()
    t = app.transport
    assert t is not None
    client_side = writer.get_extra_info("sockname")
    assert t.get_extra_info("peername") == client_side
    assert t.get_extra_info("sockname") == ("127.0.0.1", echo.port)
    assert t.get_extra_info("socket") is not None
    assert t.get_extra_info("sslcontext") is test_pki.tls.context
    conn = t.get_extra_info("ssl_object")
    assert conn.get_peer_certificate() is not None
    name, version, bits = t.get_extra_info("cipher")
    assert (name, version) == writer.get_extra_info("cipher")[:2] and bits >= 128
    assert t.get_extra_info("alpn_protocol") == "mqtt"
    assert t.get_extra_info("no such thing", "default") == "default"
    assert not t.can_write_eof()
    writer.close()
    await writer.wait_closed()


async def test_alpn_http_is_preferred_and_unknown_protocols_are_ignored(
        echo: EchoServer, test_pki: PkiFiles) -> None:
    for offered, chosen in ((["h2", "http/1.1"], "http/1.1"), (["h2"], None)):
        ctx = client_context(test_pki)
        ctx.set_alpn_protocols(offered)
        _, writer = await open_tls(echo.port, ctx)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == chosen
        writer.close()
        await writer.wait_closed()


def _blocking_handshake(port: int, ctx: ssl.SSLContext,
                        session: ssl.SSLSession | None) -> tuple[ssl.SSLSession | None, bool]:
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
        tls.sendall(b"ping")
        assert tls.recv(4) == b"ping"
        return tls.session, tls.session_reused


@pytest.mark.parametrize("version", VERSIONS)
async def test_no_resumption_so_every_connection_has_its_whole_chain(
        echo: EchoServer, test_pki: PkiFiles, version: ssl.TLSVersion) -> None:
    """A resumed session would know the leaf without its intermediates; a client that offers
    a session gets a full handshake instead of an error."""
    ctx = client_context(test_pki, test_pki.leaf_and_intermediate, version)
    session, reused = await asyncio.to_thread(_blocking_handshake, echo.port, ctx, None)
    assert not reused and session is not None
    _, reused = await asyncio.to_thread(_blocking_handshake, echo.port, ctx, session)
    assert not reused
    assert [app.chain for app in echo.apps] == [list(test_pki.leaf_and_intermediate.sent)] * 2


async def test_non_tls_bytes_are_closed_quietly(echo: EchoServer,
                                                tls_logs: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", echo.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 8)
    async with asyncio.timeout(5):
        rest = await reader.read()
    assert not rest or rest[0] == 0x15  # nothing, or a TLS alert record
    writer.close()
    await asyncio.sleep(0.05)
    assert echo.apps == []  # the application never sees a failed handshake
    no_tracebacks(tls_logs)
    ours = [r for r in tls_logs.records if r.name.startswith("opendps")]
    assert len(ours) == 1 and ours[0].levelname == "INFO" and "\n" not in ours[0].getMessage()


async def test_a_stalled_handshake_is_dropped_after_the_timeout(
        test_pki: PkiFiles, tls_logs: pytest.LogCaptureFixture) -> None:
    echo = await start_echo(test_pki, handshake_timeout=0.3)
    try:
        loop = asyncio.get_running_loop()
        for first_bytes in (b"", b"\x16\x03\x01\x02\x00\x01"):  # silent; half a ClientHello
            reader, writer = await asyncio.open_connection("127.0.0.1", echo.port)
            writer.write(first_bytes)
            started = loop.time()
            async with asyncio.timeout(5):
                try:
                    assert await reader.read() == b""
                except ConnectionResetError:
                    pass  # abort() may reset
            assert 0.25 <= loop.time() - started < 2.0
            writer.close()
        assert echo.apps == []
        no_tracebacks(tls_logs)
    finally:
        echo.server.close()


async def test_a_client_that_connects_and_leaves_is_not_an_error(
        echo: EchoServer, test_pki: PkiFiles, tls_logs: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", echo.port)
        writer.close()
        await writer.wait_closed()
    await echo_once(echo.port, client_context(test_pki))  # the server still works
    await asyncio.sleep(0.05)
    no_tracebacks(tls_logs)
    assert not [r for r in tls_logs.records if r.name.startswith("opendps")
                and r.levelname != "DEBUG"]


def _handshake_rejecting_the_server(port: int) -> None:
    ctx = ssl.create_default_context()  # does not trust the test CA
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(raw, server_hostname="localhost")


async def test_a_client_that_rejects_our_certificate_is_logged_once(
        echo: EchoServer, tls_logs: pytest.LogCaptureFixture) -> None:
    """Its alert says why (asyncio's own TLS client drops the alert, so a plain socket here)."""
    await asyncio.to_thread(_handshake_rejecting_the_server, echo.port)
    await asyncio.sleep(0.05)
    no_tracebacks(tls_logs)
    ours = [r for r in tls_logs.records if r.name == "opendps.tls"]
    assert len(ours) == 1 and "unknown ca" in ours[0].getMessage()
