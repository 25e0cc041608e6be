"""The DPS device API over MQTT (protocol.md §2): the same engine calls as HTTPS, answered on
``$dps/registrations/res/{status}/?$rid=…`` at QoS 1."""

from __future__ import annotations

import logging

from ..protocol import dps_topics, jsontext
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.mqtt import (
    ConnAckCode,
    Connect,
    Packet,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from ..provisioning.engine import ProvisioningEngine, RegistrationRequest, Reply
from .session import Outbox

log = logging.getLogger("opendps.dps.mqtt")
FAILURE = 0x80


class DpsSession:
    def __init__(self, engine: ProvisioningEngine, username: dps_topics.DpsUsername,
                 out: Outbox) -> None:
        self.engine = engine
        self.username = username
        self.out = out
        self.password: str | None = None

    def _request(self, body: bytes = b"") -> RegistrationRequest:
        return RegistrationRequest(self.username.id_scope, self.username.registration_id,
                                   self.password, body,
                                   client_chain=tuple(self.out.peer_chain))

    async def on_connect(self, packet: Connect) -> int:
        if packet.client_id != self.username.registration_id:
            return int(ConnAckCode.IDENTIFIER_REJECTED)
        if packet.password is None and not self.out.peer_chain:
            return int(ConnAckCode.NOT_AUTHORIZED)
        if packet.password is not None:
            try:
                self.password = packet.password.decode("utf-8")
            except UnicodeDecodeError:
                return int(ConnAckCode.BAD_USERNAME_OR_PASSWORD)
        if self.password is None:
            # X.509: the handshake proved the key; the chain is judged on each request, so the
            # device gets a 401002 body that names the failing check (as DPS does)
            return 0
        try:
            await self.engine.authenticate(self._request())
        except DpsError as err:
            log.info("DPS CONNECT refused for %s: %s", self.username.registration_id, err.message)
            return int(ConnAckCode.NOT_AUTHORIZED)
        return 0

    async def on_packet(self, packet: Packet) -> None:
        if isinstance(packet, Subscribe):
            codes = tuple(min(qos, 1) if topic == dps_topics.RESPONSE_FILTER else FAILURE
                          for topic, qos in packet.topics)
            self.out.send(SubAck(packet.packet_id, codes))
        elif isinstance(packet, Unsubscribe):
            self.out.send(UnsubAck(packet.packet_id))
        elif isinstance(packet, Publish):
            await self._publish(packet)
        # PUBACKs of our responses need nothing more

    async def _publish(self, packet: Publish) -> None:
        if packet.qos == 2:
            self.out.close("QoS 2 is not supported")
            return
        request = dps_topics.parse_request_topic(packet.topic)
        if request is None:
            self.out.close(f"publish to an unknown topic {packet.topic[:100]!r}")
            return
        if packet.qos == 1 and packet.packet_id is not None:
            self.out.send(PubAck(packet.packet_id))
        try:
            if request.kind == "register":
                reply = await self.engine.register(self._request(packet.payload))
            else:
                # a SAS connection was attested at CONNECT; an X.509 one is judged per request
                reply = await self.engine.operation_status(
                    self._request(), request.operation_id or "",
                    authenticated=self.password is not None)
        except DpsError as err:
            reply = Reply(err.status, err.body(),
                          retry_after=1 if err.code is ErrorCode.THROTTLED else None)
        self.out.publish(dps_topics.response_topic(reply.status, request.rid, reply.retry_after),
                         jsontext.dumpb(reply.body))

    def on_close(self) -> None:
        pass
