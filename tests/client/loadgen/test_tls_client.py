"""The client TLS transport against the server's own listener (``start_tls_server``): real
sockets, real handshakes, the server's chain verified, its host name checked, and an X.509
device's chain arriving where the engine reads it."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opendps.client.loadgen.stats import error_code
from opendps.client.tls_client import TlsClientTransport, open_tls
from opendps.client.tls_client_context import (
    TlsClientContext,
    TlsVerifyError,
    _verified,
    host_matches,
)
from opendps.transport.tls_transport import start_tls_server
from transport.pki_files import PkiFiles


class ServerApp(asyncio.Protocol):
    """Echoes; ``BYE`` makes it answer ``bye`` and close. Keeps the chain the client sent."""

    apps: ClassVar[list[ServerApp]] = []

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chain: list[x509.Certificate] = []
        ServerApp.apps.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.chain = transport.get_extra_info("peercert_chain")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if data == b"BYE":
            self.transport.write(b"bye")
            self.transport.close()
        else:
            self.transport.write(data)


class ClientApp(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.eof = False
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.more = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.more.set()

    def eof_received(self) -> bool:
        self.eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)

    async def until(self, size: int) -> bytes:
        async with asyncio.timeout(5):
            while len(self.received) < size:
                self.more.clear()
                await self.more.wait()
        return bytes(self.received)


@pytest.fixture
async def port(pki: PkiFiles) -> AsyncIterator[int]:
    ServerApp.apps.clear()
    server = await start_tls_server(ServerApp, "127.0.0.1", 0, pki.tls)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_handshake_and_data_both_ways(port: int, client_tls: TlsClientContext) -> None:
    transport, app = await open_tls(ClientApp, "127.0.0.1", port, client_tls, "localhost")
    assert isinstance(transport, TlsClientTransport)
    assert transport.get_extra_info("tls_version") == "TLSv1.3"
    assert transport.get_extra_info("tls_group") == "x25519"  # as OpenSSL 3.0 clients offer
    big = bytes(range(256)) * 1000  # several records each way
    transport.write(b"hello ")
    transport.writelines([b"wor", b"ld "])
    transport.write(big)
    assert await app.until(12 + len(big)) == b"hello world " + big
    transport.write(b"BYE")  # the server closes: the app sees EOF and the loss
    await app.until(12 + len(big) + 3)
    assert await asyncio.wait_for(app.lost, 5) is None
    assert app.eof and transport.is_closing()


async def test_the_client_closes_cleanly(port: int, client_tls: TlsClientContext) -> None:
    transport, app = await open_tls(ClientApp, "127.0.0.1", port, client_tls, "127.0.0.1")
    transport.write(b"ping")
    await app.until(4)
    transport.close()
    assert await asyncio.wait_for(app.lost, 5) is None
    server = ServerApp.apps[0]
    assert server.transport is not None
    for _ in range(100):
        if server.transport.is_closing():
            break
        await asyncio.sleep(0.01)
    assert server.transport.is_closing()  # it saw our close_notify


@pytest.mark.parametrize("name", ["wrong.example", "127.0.0.2", "::2", "sub.localhost"])
async def test_a_name_the_certificate_lacks_is_refused(port: int, client_tls: TlsClientContext,
                                                        name: str) -> None:
    with pytest.raises(TlsVerifyError, match="Hostname mismatch") as caught:
        await open_tls(ClientApp, "127.0.0.1", port, client_tls, name)
    assert repr(name) in str(caught.value) and "localhost" in str(caught.value)
    assert isinstance(caught.value, ssl.SSLCertVerificationError)
    assert error_code(caught.value) == "tls CERTIFICATE_VERIFY_FAILED"


async def test_a_certificate_from_an_untrusted_ca_is_refused(port: int,
                                                             stranger_ca: Path) -> None:
    with pytest.raises(TlsVerifyError, match="certificate verify failed") as caught:
        await open_tls(ClientApp, "127.0.0.1", port, TlsClientContext(stranger_ca),
                       "localhost")
    assert str(stranger_ca) in str(caught.value)
    assert "self-signed" in str(caught.value) or "issuer" in str(caught.value)


async def test_the_name_check_is_remembered_per_leaf(port: int,
                                                     client_tls: TlsClientContext) -> None:
    _verified.clear()
    transport, _ = await open_tls(ClientApp, "127.0.0.1", port, client_tls, "localhost")
    transport.close()
    assert [host for _, host in _verified] == ["localhost"]
    transport, _ = await open_tls(ClientApp, "127.0.0.1", port, client_tls, "localhost")
    transport.close()
    assert len(_verified) == 1
    with pytest.raises(TlsVerifyError):  # the same leaf for another name is checked afresh
        await open_tls(ClientApp, "127.0.0.1", port, client_tls, "elsewhere.example")


@pytest.mark.parametrize("which", ["leaf_only", "leaf_and_intermediate"])
async def test_an_x509_device_chain_reaches_the_server(port: int, pki: PkiFiles,
                                                       which: str) -> None:
    device = getattr(pki, which)
    tls = TlsClientContext(pki.server_ca_file, device.cert_file, device.key_file)
    transport, app = await open_tls(ClientApp, "127.0.0.1", port, tls, "localhost")
    transport.write(b"x")
    await app.until(1)
    assert ServerApp.apps[0].chain == list(device.sent)  # leaf first, as the engine reads it
    transport.close()


async def test_a_refused_connection_raises(client_tls: TlsClientContext) -> None:
    with pytest.raises(ConnectionRefusedError):
        await open_tls(ClientApp, "127.0.0.1", 1, client_tls)


async def test_a_server_that_is_not_tls(client_tls: TlsClientContext) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await open_tls(ClientApp, "127.0.0.1", server.sockets[0].getsockname()[1],
                           client_tls, "localhost")
    finally:
        server.close()


def _cert(*names: x509.GeneralName) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cn.example")])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(("host", "ok"), [
    ("dps.example", True), ("DPS.Example.", True), ("a.hub.example", True),
    ("hub.example", False), ("a.b.hub.example", False), ("cn.example", False),
    ("10.0.0.1", True), ("10.0.0.2", False), ("2001:db8::1", True),
    ("x.partial.example", False),
])
def test_host_matching_follows_python_ssl(host: str, ok: bool) -> None:
    cert = _cert(x509.DNSName("dps.example"), x509.DNSName("*.hub.example"),
                 x509.DNSName("x*.partial.example"),
                 x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("2001:db8::1")))
    assert host_matches(cert, host) is ok


def test_no_san_matches_nothing_not_even_the_cn() -> None:
    assert not host_matches(_cert(), "cn.example")
