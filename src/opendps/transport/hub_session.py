"""The built-in hub's device endpoint over MQTT (protocol.md §7): telemetry, twin GET,
reported patches, desired-property updates pushed while subscribed.

Telemetry is acknowledged only once stored, and stored by group commit (``hub/telemetry``), so
a device's consecutive telemetry PUBLISHes are submitted without waiting for one another (up to
``MAX_IN_FLIGHT``): a device that pipelines gets many messages per commit, not one. PUBACKs
still go out in the order the PUBLISHes came (MQTT 3.1.1 §4.6), and any other packet waits for
the telemetry before it, so only consecutive telemetry overlaps."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable

from ..hub.builtin import BuiltinHub, DeviceAuthError
from ..hub.bus import desired_channel
from ..hub.telemetry import TelemetryEvent
from ..protocol import hub_topics
from ..protocol.hub_models import device_twin_document, empty_twin
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
from ..protocol.twin_patch import TwinPatchError
from .session import Outbox

log = logging.getLogger("opendps.hub.mqtt")
FAILURE = 0x80
MAX_SUBSCRIPTIONS = 5  # "A device can only subscribe to five topics at a time."
MAX_IN_FLIGHT = 16  # telemetry messages per connection waiting for their commit


class HubSession:
    def __init__(self, hub: BuiltinHub, username: hub_topics.HubUsername, out: Outbox) -> None:
        self.hub = hub
        self.username = username
        self.device_id = username.device_id
        self.out = out
        self.subscriptions: set[str] = set()
        self._unsubscribe_desired: Callable[[], None] | None = None
        self._attached = False
        # telemetry submitted, oldest first, with the PUBLISH each one will acknowledge
        self._in_flight: deque[tuple[asyncio.Future[TelemetryEvent], Publish]] = deque()
        self._lost = False  # a message was not stored: nothing later is acknowledged

    # DeviceLink for the connection table
    def drop(self, reason: str) -> None:
        self.out.close(reason)

    async def on_connect(self, packet: Connect) -> int:
        if self.username.module_id is not None:
            return int(ConnAckCode.NOT_AUTHORIZED)  # modules are not supported yet
        if packet.client_id != self.device_id:
            return int(ConnAckCode.IDENTIFIER_REJECTED)
        password = None
        if packet.password is not None:
            try:
                password = packet.password.decode("utf-8")
            except UnicodeDecodeError:
                return int(ConnAckCode.BAD_USERNAME_OR_PASSWORD)
        try:
            await self.hub.authenticate(self.device_id, password,
                                        chain=tuple(self.out.peer_chain))
        except DeviceAuthError as err:
            log.info("hub CONNECT refused for %s: %s", self.device_id, err)
            return err.connack
        self.hub.connections.attach(self.hub.host_name, self.device_id, self)
        self._attached = True
        return 0

    async def on_packet(self, packet: Packet) -> None:
        if self._lost:  # closing: nothing after the lost message is handled
            return
        if isinstance(packet, Publish) and packet.qos < 2:
            bag = hub_topics.telemetry_bag(packet.topic, self.device_id)
            if bag is not None:
                await self._telemetry(packet, bag)
                return
        await self._settle()
        if self._lost:
            return
        if isinstance(packet, Subscribe):
            self._subscribe(packet)
        elif isinstance(packet, Unsubscribe):
            for topic in packet.topics:
                self.subscriptions.discard(topic)
                if topic == hub_topics.DESIRED_FILTER:
                    self._stop_desired()
            self.out.send(UnsubAck(packet.packet_id))
        elif isinstance(packet, Publish):
            await self._publish(packet)

    def _subscribe(self, packet: Subscribe) -> None:
        codes = []
        for topic, qos in packet.topics:
            allowed = hub_topics.allowed_subscription(topic, self.device_id)
            if allowed and (topic in self.subscriptions
                            or len(self.subscriptions) < MAX_SUBSCRIPTIONS):
                self.subscriptions.add(topic)
                codes.append(min(qos, 1))
                if topic == hub_topics.DESIRED_FILTER and self._unsubscribe_desired is None:
                    self._unsubscribe_desired = self.hub.bus.subscribe(
                        desired_channel(self.hub.host_name, self.device_id), self._desired)
            else:
                codes.append(FAILURE)
        self.out.send(SubAck(packet.packet_id, tuple(codes)))

    def _desired(self, patch: dict) -> None:
        version = patch.get("$version", 0)
        self.out.publish(hub_topics.desired_patch_topic(version),
                         json.dumps(patch, separators=(",", ":")).encode(), qos=0)

    def handle_now(self, packet: Publish) -> bool:
        """Telemetry that fits in flight is submitted at once (``Session``); what would
        have to wait for room, like everything else, goes through ``on_packet``."""
        if self._lost or packet.qos == 2 or len(self._in_flight) >= MAX_IN_FLIGHT - 1:
            return False
        bag = hub_topics.telemetry_bag(packet.topic, self.device_id)
        if bag is None:
            return False
        self._submit(packet, bag)
        return True

    async def _telemetry(self, packet: Publish, bag: str) -> None:
        self._submit(packet, bag)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait([self._in_flight[0][0]])

    def _submit(self, packet: Publish, bag: str) -> None:
        system, app = hub_topics.parse_property_bag(bag)
        done = self.hub.telemetry.submit(self.device_id, packet.payload, system, app)
        self._in_flight.append((done, packet))
        done.add_done_callback(self._acknowledge)

    def _acknowledge(self, _done: object = None) -> None:
        """PUBACK the stored messages at the head of the line, in order. A message that was
        not stored gets none, nor does anything after it: the connection closes and the
        device sends them all again."""
        while self._in_flight and self._in_flight[0][0].done():
            done, packet = self._in_flight.popleft()
            error: BaseException | None = (
                asyncio.CancelledError() if done.cancelled() else done.exception())
            if error is not None and not self._lost:
                self._lost = True
                log.info("hub telemetry from %s not stored: %r", self.device_id, error)
                self.out.close("telemetry not stored")
            if not self._lost:
                self._ack(packet)

    async def _settle(self) -> None:
        """Wait until the telemetry received so far is stored and acknowledged."""
        if self._in_flight:
            await asyncio.wait([done for done, _ in self._in_flight])
            self._acknowledge()

    async def _publish(self, packet: Publish) -> None:
        if packet.qos == 2:
            self.out.close("QoS 2 is not supported by IoT Hub")
            return
        twin = hub_topics.parse_twin_topic(packet.topic)
        if twin is None:
            self.out.close(f"publish to an unknown topic {packet.topic[:100]!r}")
            return
        self._ack(packet)
        if twin.kind == "get":
            stored = await self.hub.twins.get(self.device_id)
            doc = device_twin_document(stored.doc if stored else empty_twin())
            self._twin_reply(200, twin.rid, json.dumps(doc).encode())
        else:
            await self._patch_reported(twin.rid, packet.payload)

    async def _patch_reported(self, rid: str, payload: bytes) -> None:
        try:
            patch = json.loads(payload)
            if not isinstance(patch, dict):
                raise TwinPatchError("a reported-properties patch must be a JSON object")
            stored = await self.hub.twins.patch_reported(self.device_id, patch)
        except (ValueError, UnicodeDecodeError, TwinPatchError) as exc:
            body = {"errorCode": 400004, "message": f"invalid patch: {exc}"}
            self._twin_reply(400, rid, json.dumps(body).encode())
            return
        self.out.publish(hub_topics.twin_response_topic(
            204, rid, stored.doc["reportedVersion"]), b"", qos=0)

    def _twin_reply(self, status: int, rid: str, body: bytes) -> None:
        self.out.publish(hub_topics.twin_response_topic(status, rid), body, qos=0)

    def _ack(self, packet: Publish) -> None:
        if packet.qos == 1 and packet.packet_id is not None:
            self.out.send(PubAck(packet.packet_id))

    def _stop_desired(self) -> None:
        if self._unsubscribe_desired is not None:
            self._unsubscribe_desired()
            self._unsubscribe_desired = None

    def on_close(self) -> None:
        self._stop_desired()
        if self._attached:
            self.hub.connections.detach(self.hub.host_name, self.device_id, self)
