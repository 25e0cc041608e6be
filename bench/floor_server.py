"""The floor: opendps's own TLS listener and HTTP/MQTT stacks with no provisioning behind them.

Same ``TlsConfig`` (pyOpenSSL, client certificate requested, no resumption),
``start_tls_server`` and event loop (``run_forever``: uvloop when installed) as
``opendps serve``, the same HTTP layers (``api/device_front.py`` for the device routes, an
aiohttp app behind it for anything else) and an MQTT responder built on
``opendps.protocol.mqtt``, answering every request with a fixed body: a registration PUT gets
202 ``assigning``, an operation GET 200 ``assigned``, so a device makes the same two round
trips as against the real server. What opendps costs above this is what the provisioning
logic, the store and the session layers cost.

    python bench/floor_server.py --host 127.0.0.9 --cert server.pem --key server.key
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from aiohttp import web

from opendps.api.device_front import front_factory
from opendps.cli.serve import run_forever
from opendps.protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    Connect,
    ConnectionClosed,
    Disconnect,
    MqttConnection,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    Role,
    SubAck,
    Subscribe,
)
from opendps.provisioning.engine import RegistrationRequest, Reply
from opendps.transport.tls import TlsConfig
from opendps.transport.tls_transport import start_tls_server

STATE = {"deviceId": "floor", "assignedHub": "floor.example", "substatus": "initialAssignment",
         "createdDateTimeUtc": "2026-01-01T00:00:00Z", "status": "assigned"}
ASSIGNING_DOC = {"operationId": "floor-op", "status": "assigning"}
ASSIGNED_DOC = {"operationId": "floor-op", "status": "assigned", "registrationState": STATE}
ASSIGNING = json.dumps(ASSIGNING_DOC).encode()
ASSIGNED = json.dumps(ASSIGNED_DOC).encode()


class FixedEngine:
    """What ``DeviceFront`` calls on opendps's engine, with the fixed answers."""

    async def register(self, req: RegistrationRequest) -> Reply:
        return Reply(202, ASSIGNING_DOC, retry_after=3)

    async def operation_status(self, req: RegistrationRequest, operation_id: str) -> Reply:
        return Reply(200, ASSIGNED_DOC)

    async def registration_status(self, req: RegistrationRequest) -> Reply:
        return Reply(200, STATE)


async def http_handler(request: web.Request) -> web.Response:
    """Read the body (as the real handler must), then the fixed answer."""
    await request.read()
    if request.method == "PUT":
        return web.Response(status=202, body=ASSIGNING, content_type="application/json")
    return web.Response(status=200, body=ASSIGNED, content_type="application/json")


class MqttResponder(asyncio.Protocol):
    """CONNACK, SUBACK, PUBACK; DPS register/poll PUBLISHes get the fixed QoS 1 answer."""

    def __init__(self) -> None:
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
                self.transport.close()
                return
            self.transport.write(b"".join(self._answer(event)))

    def _answer(self, packet: object) -> list[bytes]:
        send = self.conn.send
        if isinstance(packet, Connect):
            return [send(ConnAck(False, 0))]
        if isinstance(packet, Subscribe):
            return [send(SubAck(packet.packet_id, tuple(min(q, 1) for _, q in packet.topics)))]
        if isinstance(packet, PingReq):
            return [send(PingResp())]
        if not isinstance(packet, Publish):
            return []
        out = [send(PubAck(packet.packet_id))] if packet.qos == 1 and packet.packet_id else []
        if packet.topic.startswith("$dps/registrations/"):
            rid = packet.topic.partition("$rid=")[2].partition("&")[0]
            if "/PUT/" in packet.topic:
                topic, body = f"$dps/registrations/res/202/?$rid={rid}&retry-after=3", ASSIGNING
            else:
                topic, body = f"$dps/registrations/res/200/?$rid={rid}", ASSIGNED
            out.append(send(Publish(topic, body, 1, self.conn.next_packet_id())))
        return out

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, cert: Path, key: str, https_port: int, mqtt_port: int) -> None:
    tls = TlsConfig(cert, Path(key))
    runner = web.AppRunner(web.Application(),
                           access_log=None, handle_signals=False)
    runner.app.router.add_route("*", "/{tail:.*}", http_handler)
    await runner.setup()
    assert runner.server is not None
    https = await start_tls_server(front_factory(FixedEngine(), runner.server), host,
                                   https_port, tls)
    mqtt = await start_tls_server(MqttResponder, host, mqtt_port, tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # the loop is named so a test can hold it to opendps's own (a floor on a slower loop
    # would flatter every ratio)
    print(f"floor listening on {host}:{https_port} and {host}:{mqtt_port} "
          f"(loop {type(loop).__module__}.{type(loop).__qualname__})", flush=True)
    await stop.wait()
    https.close()
    mqtt.close()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True)
    parser.add_argument("--https-port", type=int, default=443)
    parser.add_argument("--mqtt-port", type=int, default=8883)
    args = parser.parse_args()
    run_forever(serve(args.host, args.cert, args.key, args.https_port, args.mqtt_port))


if __name__ == "__main__":
    main()
