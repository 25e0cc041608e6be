"""The applications the server puts behind the TLS transport: aiohttp (HTTPS and WebSocket,
``web.Server`` as the protocol factory) and the MQTT listener; each sees the client's chain."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from opendps.protocol.mqtt import ConnAck, Connect, Decoder, encode
from opendps.transport.endpoint import MqttEndpoint
from opendps.transport.mqtt_listener import start_mqtt_listener
from opendps.transport.tls_transport import start_tls_server
from opendps.transport.websocket import websocket_handler

from .conftest import client_context
from .pki_files import REGISTRATION_ID, PkiFiles


def leaf_cn(chain: list[x509.Certificate]) -> str:
    if not chain:
        return "anonymous"
    return str(chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


class CapturingRouter:
    """Records each endpoint's chain and refuses the CONNECT (no session needed for that)."""

    def __init__(self) -> None:
        self.chains: list[list[x509.Certificate]] = []

    def __call__(self, packet: Connect, endpoint: MqttEndpoint) -> None:
        self.chains.append(endpoint.peer_chain)
        return None


async def whoami(request: web.Request) -> web.Response:
    assert request.transport is not None
    chain = request.transport.get_extra_info("peercert_chain")
    body = await request.read()
    return web.json_response({"cn": leaf_cn(chain), "certs": len(chain),
                              "secure": request.secure, "bytes": len(body)})


async def ws_whoami(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat",))
    await ws.prepare(request)
    assert request.transport is not None
    await ws.send_str(leaf_cn(request.transport.get_extra_info("peercert_chain")))
    async for msg in ws:
        await ws.send_bytes(msg.data)
    return ws


@pytest.fixture
async def https(test_pki: PkiFiles) -> AsyncIterator[tuple[int, CapturingRouter]]:
    router = CapturingRouter()
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/whoami", whoami)
    app.router.add_get("/ws", ws_whoami)
    app.router.add_get("/mqtt", websocket_handler(router, 5.0))  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    server = await start_tls_server(runner.server, "127.0.0.1", 0, test_pki.tls)
    yield server.sockets[0].getsockname()[1], router
    server.close()
    await runner.cleanup()


def session(ctx: ssl.SSLContext) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))


@pytest.mark.parametrize("which", ["none", "leaf_only", "leaf_and_intermediate", "untrusted"])
async def test_an_aiohttp_handler_reads_the_chain(https: tuple[int, CapturingRouter],
                                                  test_pki: PkiFiles, which: str) -> None:
    port, _ = https
    dev = None if which == "none" else getattr(test_pki, which)
    async with session(client_context(test_pki, dev)) as http:
        for body in (b"", b"x" * 2_000_000):  # keep-alive: the second request reuses the socket
            async with http.post(f"https://localhost:{port}/whoami", data=body) as resp:
                assert resp.status == 200
                got = await resp.json()
            assert got == {"cn": REGISTRATION_ID if dev else "anonymous",
                           "certs": len(dev.sent) if dev else 0, "secure": True,
                           "bytes": len(body)}


async def test_a_websocket_upgrade(https: tuple[int, CapturingRouter],
                                   test_pki: PkiFiles) -> None:
    port, _ = https
    async with session(client_context(test_pki, test_pki.leaf_and_intermediate)) as http, \
            http.ws_connect(f"wss://localhost:{port}/ws", protocols=("chat",)) as ws:
        assert ws.protocol == "chat"
        assert await ws.receive_str() == REGISTRATION_ID
        for size in (10, 300_000):
            await ws.send_bytes(b"m" * size)
            assert await ws.receive_bytes() == b"m" * size


def connect_bytes() -> bytes:
    return encode(Connect(REGISTRATION_ID, username="scope/registrations/x/api-version=1",
                          password=None, keep_alive=60))


def read_connack(decoder: Decoder, data: bytes) -> ConnAck:
    decoder.feed(data)
    packet = decoder.next_packet()
    assert isinstance(packet, ConnAck), packet
    return packet


async def test_mqtt_over_websocket_endpoint_gets_the_chain(https: tuple[int, CapturingRouter],
                                                           test_pki: PkiFiles) -> None:
    port, router = https
    async with session(client_context(test_pki, test_pki.leaf_and_intermediate)) as http, \
            http.ws_connect(f"wss://localhost:{port}/mqtt", protocols=("mqtt",)) as ws:
        await ws.send_bytes(connect_bytes())
        assert read_connack(Decoder(), await ws.receive_bytes()).return_code != 0
    assert router.chains == [list(test_pki.leaf_and_intermediate.sent)]


@pytest.mark.parametrize("which", ["none", "leaf_and_intermediate"])
async def test_mqtt_listener_endpoint_gets_the_chain(test_pki: PkiFiles, which: str) -> None:
    router = CapturingRouter()
    server = await start_mqtt_listener(router, "127.0.0.1", 0, test_pki.tls,  # type: ignore[arg-type]
                                       connect_timeout=5.0)
    dev = None if which == "none" else getattr(test_pki, which)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1],
            ssl=client_context(test_pki, dev), server_hostname="localhost")
        writer.write(connect_bytes())
        assert read_connack(Decoder(), await reader.read(4)).return_code != 0
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # refused, so closed
        writer.close()
    finally:
        server.close()
    assert router.chains == [list(dev.sent) if dev else []]
