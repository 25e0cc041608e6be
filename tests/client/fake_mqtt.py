"""A scripted MQTT server for client tests: the codec's SERVER role on a loopback TLS socket.

It is not opendps's server: it answers exactly what each test scripts (``on_publish``), so the
client is tested against fixed wire behaviour, and it records every packet it received.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from opendps import pki
from opendps.protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    Connect,
    ConnectionClosed,
    MqttConnection,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    Role,
    SubAck,
    Subscribe,
)

# (topic, payload, qos) tuples to send back for one received PUBLISH
Reply = list[tuple[str, bytes, int]]


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    def server_context(self, client_ca: Path | None = None) -> ssl.SSLContext:
        """With ``client_ca``, a client certificate chaining to it is required."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(client_ca))
        return context


def make_tls_files(directory: Path, names: list[str]) -> TlsFiles:
    ca_cert, ca_key = pki.create_ca("test CA")
    cert, key = pki.create_server_cert(ca_cert, ca_key, names)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_text(ca_cert)
    files.cert.write_text(cert + ca_cert)
    files.key.write_text(key)
    return files


@dataclass
class FakeMqttServer:
    tls: TlsFiles
    on_publish: Callable[[Publish], Reply] = lambda packet: []
    connack_code: int = 0
    drop_on_publish: bool = False  # close the socket instead of answering a PUBLISH
    client_ca: Path | None = None  # require a client certificate chaining to this root
    peer_certs: list[bytes | None] = field(default_factory=list)  # DER leaf per connection
    received: list[Packet] = field(default_factory=list)
    connects: list[Connect] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _packet_id: int = 0

    async def start(self) -> FakeMqttServer:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.tls.server_context(self.client_ca))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def publishes(self, prefix: str = "") -> list[Publish]:
        return [p for p in self.received if isinstance(p, Publish) and p.topic.startswith(prefix)]

    def pubacks(self) -> list[PubAck]:
        return [p for p in self.received if isinstance(p, PubAck)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = MqttConnection(Role.SERVER)
        ssl_object = writer.get_extra_info("ssl_object")
        self.peer_certs.append(ssl_object.getpeercert(binary_form=True) if ssl_object else None)
        try:
            while True:
                data = await reader.read(65536)
                conn.receive_data(data)
                while True:
                    event = conn.next_event()
                    if event is NEED_DATA:
                        break
                    if event is PAUSED:  # a CONNECT is waiting for our answer
                        writer.write(conn.send(ConnAck(False, self.connack_code)))
                        continue
                    if isinstance(event, ConnectionClosed):
                        return
                    self.received.append(event)
                    if self.drop_on_publish and isinstance(event, Publish):
                        return
                    for packet in self._answer(event):
                        writer.write(conn.send(packet))
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _answer(self, packet: Packet) -> list[Packet]:
        if isinstance(packet, Connect):
            self.connects.append(packet)
            return []
        if isinstance(packet, Subscribe):
            return [SubAck(packet.packet_id, tuple(min(q, 1) for _, q in packet.topics))]
        if isinstance(packet, PingReq):
            return [PingResp()]
        if isinstance(packet, Publish):
            out: list[Packet] = []
            if packet.qos == 1 and packet.packet_id is not None:
                out.append(PubAck(packet.packet_id))
            for topic, payload, qos in self.on_publish(packet):
                self._packet_id = self._packet_id % 65535 + 1
                out.append(Publish(topic, payload, qos, self._packet_id if qos else None))
            return out
        return []


StartServer = Callable[..., Awaitable[FakeMqttServer]]
