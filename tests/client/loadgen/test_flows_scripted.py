"""The lean registrations against scripted servers on the real TLS listener: the answers a
real opendps rarely gives (429, 5xx, ``failed``, silence, a dropped connection) and the waits
they call for. The HTTP side is aiohttp, the MQTT side the codec in the server role."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from opendps.client.loadgen.https import HttpRegistrationError, HttpsRegistration
from opendps.client.loadgen.mqtt import MqttRegistration
from opendps.client.loadgen.stats import error_code
from opendps.client.mqtt_session import ConnectionLost, ConnectRefused, MqttError
from opendps.client.tls_client_context import TlsClientContext
from opendps.protocol import dps_topics, sas
from opendps.protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    Connect,
    ConnectionClosed,
    Disconnect,
    MqttConnection,
    Packet,
    PubAck,
    Publish,
    Role,
    SubAck,
    Subscribe,
)
from opendps.transport.tls_transport import start_tls_server
from transport.pki_files import PkiFiles

SCOPE, REG = "0ne00000001", "dev-1"
KEY = sas.derive_device_key("Z3JvdXAta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5YWI=", REG)
ASSIGNING = {"operationId": "4.op/1+x", "status": "assigning"}
ASSIGNED = {"operationId": "4.op/1+x", "status": "assigned",
            "registrationState": {"deviceId": REG, "assignedHub": "hub.example"}}
FAILED = {"operationId": "4.op/1+x", "status": "failed",
          "registrationState": {"errorCode": 400209, "errorMessage": "disabled"}}

# one scripted answer: (status, retry-after or None, JSON body or None)
Answer = tuple[int, int | None, dict[str, Any] | None]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits asked for, in order; each is skipped (the clock is not the subject)."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        if delay:
            asked.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return asked


# -- HTTPS --------------------------------------------------------------------------------------
@dataclass
class HttpScript:
    answers: list[Answer]
    close_after: set[int] = field(default_factory=set)  # answer numbers sent with Connection: close
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    peers: set[Any] = field(default_factory=set)
    hang: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests.append((request.method, request.path_qs,
                              request.headers.get("Authorization")))
        self.peers.add(request.transport.get_extra_info("peername") if request.transport
                       else None)
        if self.hang:
            await asyncio.Event().wait()
        status, retry, body = self.answers.pop(0)
        headers = {"retry-after": str(retry)} if retry is not None else {}
        if len(self.requests) in self.close_after:
            headers["Connection"] = "close"
        return web.Response(status=status, headers=headers,
                            body=json.dumps(body).encode() if body is not None else b"",
                            content_type="application/json")


@pytest.fixture
async def http_server(pki: PkiFiles) -> AsyncIterator[Callable[[HttpScript], Any]]:
    runners: list[web.AppRunner] = []
    servers: list[asyncio.Server] = []

    async def start(script: HttpScript) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", script.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        runners.append(runner)
        assert runner.server is not None
        server = await start_tls_server(runner.server, "127.0.0.1", 0, pki.tls)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
    for runner in runners:
        await runner.cleanup()


def https(port: int, tls: TlsClientContext, **kwargs: Any) -> HttpsRegistration:
    return HttpsRegistration("localhost", SCOPE, REG, KEY, tls=tls, port=port,
                             connect_host="127.0.0.1", **kwargs)


@pytest.mark.parametrize(("poll_immediately", "waits"), [(False, [5, 2.0, 3]), (True, [5, 2.0])])
async def test_https_retries_and_waits(http_server: Any, client_tls: TlsClientContext,
                                       sleeps: list[float], poll_immediately: bool,
                                       waits: list[float]) -> None:
    """429 and 5xx are re-sent after retry-after (2 s without one), even when polling at
    once; only the wait between polls is skipped."""
    script = HttpScript([(429, 5, None), (503, None, None), (202, 3, ASSIGNING),
                         (200, None, ASSIGNED)])
    port = await http_server(script)
    status = await https(port, client_tls, poll_immediately=poll_immediately).register()
    assert status == ASSIGNED
    assert sleeps == waits
    assert [m for m, _, _ in script.requests] == ["PUT", "PUT", "PUT", "GET"]
    assert script.requests[-1][1] == (f"/{SCOPE}/registrations/{REG}/operations/4.op/1+x"
                                      "?api-version=2019-03-31")
    token = sas.parse(script.requests[0][2] or "")
    assert token.resource == f"{SCOPE}/registrations/{REG}" and token.key_name == "registration"
    assert sas.signature_matches(token, [KEY])
    assert len(script.peers) == 1  # one connection for the whole registration


async def test_https_reconnects_after_connection_close(http_server: Any,
                                                       client_tls: TlsClientContext) -> None:
    script = HttpScript([(202, None, ASSIGNING), (200, None, ASSIGNED)], close_after={1})
    port = await http_server(script)
    assert await https(port, client_tls, poll_immediately=True).register() == ASSIGNED
    assert len(script.peers) == 2


@pytest.mark.parametrize(("answers", "label", "status"), [
    ([(202, None, ASSIGNING), (200, None, FAILED)], "400209", 200),
    ([(401, None, {"errorCode": 401002, "message": "no"})], "401002", 401),
    ([(404, None, None)], "http 404", 404),
    ([(200, None, {"status": "weird"})], "bad-status", 200),
])
async def test_https_errors_carry_status_and_code(http_server: Any,
                                                  client_tls: TlsClientContext,
                                                  answers: list[Answer], label: str,
                                                  status: int) -> None:
    port = await http_server(HttpScript(list(answers)))
    with pytest.raises(HttpRegistrationError) as caught:
        await https(port, client_tls, poll_immediately=True).register()
    assert caught.value.status == status
    assert error_code(caught.value) == label


async def test_https_timeout(http_server: Any, client_tls: TlsClientContext) -> None:
    port = await http_server(HttpScript([], hang=True))
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        await https(port, client_tls, timeout=0.3).register()
    assert time.monotonic() - started < 2
    assert error_code(caught.value) == "timeout"


# -- MQTT ---------------------------------------------------------------------------------------
@dataclass
class MqttScript:
    answers: list[Answer] = field(default_factory=list)
    connack: int = 0
    suback: int = 1
    silent: bool = False  # never CONNACK
    drop_on_publish: bool = False
    received: list[Packet] = field(default_factory=list)
    sent_ids: list[int] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)


class ScriptedDps(asyncio.Protocol):
    def __init__(self, script: MqttScript) -> None:
        self.script = script
        self.conn = MqttConnection(Role.SERVER)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            if isinstance(event, ConnectionClosed | Disconnect):
                if isinstance(event, Disconnect):
                    self.script.received.append(event)
                    self.script.disconnected.set()
                self.transport.close()
                return
            self.script.received.append(event)
            self._answer(event)

    def _answer(self, packet: Packet) -> None:
        assert self.transport is not None
        script, send = self.script, self.conn.send
        if isinstance(packet, Connect) and not script.silent:
            self.transport.write(send(ConnAck(False, script.connack)))
            if script.connack:
                self.transport.close()
        elif isinstance(packet, Subscribe):
            self.transport.write(send(SubAck(packet.packet_id, (script.suback,))))
        elif isinstance(packet, Publish):
            if script.drop_on_publish:
                self.transport.abort()
                return
            self.transport.write(send(PubAck(packet.packet_id or 0)))
            rid = packet.topic.partition("$rid=")[2].partition("&")[0]
            status, retry, body = script.answers.pop(0)
            packet_id = self.conn.next_packet_id()
            script.sent_ids.append(packet_id)
            self.transport.write(send(Publish(
                dps_topics.response_topic(status, rid, retry),
                json.dumps(body).encode() if body is not None else b"", 1, packet_id)))


@pytest.fixture
async def mqtt_server(pki: PkiFiles) -> AsyncIterator[Callable[[MqttScript], Any]]:
    servers: list[asyncio.Server] = []

    async def start(script: MqttScript) -> int:
        server = await start_tls_server(lambda: ScriptedDps(script), "127.0.0.1", 0, pki.tls)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


def mqtt(port: int, tls: TlsClientContext, **kwargs: Any) -> MqttRegistration:
    return MqttRegistration("localhost", SCOPE, REG, KEY, tls=tls, port=port,
                            connect_host="127.0.0.1", **kwargs)


@pytest.mark.parametrize(("poll_immediately", "waits"), [(False, [5, 2.0, 3]), (True, [5, 2.0])])
async def test_mqtt_retries_waits_and_acks(mqtt_server: Any, client_tls: TlsClientContext,
                                           sleeps: list[float], poll_immediately: bool,
                                           waits: list[float]) -> None:
    script = MqttScript([(429, 5, None), (500, None, None), (202, 3, ASSIGNING),
                         (200, None, ASSIGNED)])
    port = await mqtt_server(script)
    status = await mqtt(port, client_tls, poll_immediately=poll_immediately).register()
    assert status == ASSIGNED
    assert sleeps == waits
    async with asyncio.timeout(5):
        await script.disconnected.wait()
    connect, subscribe, *rest = script.received
    assert isinstance(connect, Connect) and connect.client_id == REG
    assert connect.username == (f"{SCOPE}/registrations/{REG}/"
                                "api-version=2019-03-31&ClientVersion=opendps")
    token = sas.parse((connect.password or b"").decode())
    assert token.resource == f"{SCOPE}/registrations/{REG}" and token.key_name is None
    assert sas.signature_matches(token, [KEY])
    assert isinstance(subscribe, Subscribe)
    assert subscribe.topics == ((dps_topics.RESPONSE_FILTER, 1),)
    publishes = [p for p in rest if isinstance(p, Publish)]
    topics = [p.topic for p in publishes]
    assert [t.split("?")[0] for t in topics] == [dps_topics.REGISTER_PREFIX] * 3 + [
        dps_topics.POLL_PREFIX]
    rids = [t.partition("$rid=")[2].partition("&")[0] for t in topics]
    assert len(set(rids)) == 4  # a new rid for every request, resends too
    assert topics[-1].endswith("&operationId=4.op%2F1%2Bx")
    assert json.loads(publishes[0].payload) == {"registrationId": REG, "payload": None}
    acked = [p.packet_id for p in rest if isinstance(p, PubAck)]
    assert acked == script.sent_ids  # every QoS 1 answer PUBACKed
    assert isinstance(rest[-1], Disconnect)


@pytest.mark.parametrize(("script", "error", "label"), [
    (lambda: MqttScript([(202, None, ASSIGNING), (200, None, FAILED)]), Exception, "400209"),
    (lambda: MqttScript([(401, None, {"errorCode": 401002})]), Exception, "401002"),
    (lambda: MqttScript([(404, None, None)]), Exception, "http 404"),
    (lambda: MqttScript(connack=5), ConnectRefused, "ConnectRefused"),
    (lambda: MqttScript(suback=0x80), MqttError, "MqttError"),
    (lambda: MqttScript(drop_on_publish=True), ConnectionLost, "ConnectionLost"),
], ids=["failed", "401002", "404", "connack", "suback", "dropped"])
async def test_mqtt_errors(mqtt_server: Any, client_tls: TlsClientContext,
                           script: Callable[[], MqttScript], error: type[Exception],
                           label: str) -> None:
    port = await mqtt_server(script())
    with pytest.raises(error) as caught:
        await mqtt(port, client_tls, poll_immediately=True).register()
    assert error_code(caught.value) == label


async def test_mqtt_timeout(mqtt_server: Any, client_tls: TlsClientContext) -> None:
    port = await mqtt_server(MqttScript(silent=True))
    with pytest.raises(TimeoutError, match=r"not finished within 0\.3 s") as caught:
        await mqtt(port, client_tls, timeout=0.3).register()
    assert error_code(caught.value) == "timeout"
