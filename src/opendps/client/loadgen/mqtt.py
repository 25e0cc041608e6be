"""A lean DPS device registration over MQTT: the sans-I/O codec on one asyncio protocol.

``MqttSession`` (the general client) runs a reader task and a ping task per connection and
wraps every await in ``wait_for(shield(...))``; for a one-shot registration that costs more
client CPU than the server spends. Here one protocol object feeds ``MqttConnection`` and
resolves one future at a time, in the order the SDKs go: CONNECT → CONNACK, SUBSCRIBE →
SUBACK, PUBLISH register → PUBACK and the answer, PUBLISH poll → the answer, DISCONNECT. The
username, SAS password, bodies and retry rules are those of ``client/dps_device.py``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

from ...protocol import dps_topics, sas
from ...protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    ConnAckCode,
    Connect,
    ConnectionClosed,
    Disconnect,
    LocalProtocolError,
    MqttConnection,
    Packet,
    PubAck,
    Publish,
    Role,
    SubAck,
    Subscribe,
)
from ..dps_device import (
    API_VERSION,
    CLIENT_VERSION,
    DEFAULT_RETRY_AFTER,
    RESPONSE_PREFIX,
    DpsResponse,
    ProvisioningError,
    response_body,
    response_error,
)
from ..mqtt_session import DEFAULT_KEEP_ALIVE, ConnectionLost, ConnectRefused, MqttError
from ..tls_client import open_tls
from ..tls_client_context import TlsClientContext

__all__ = ["MqttRegistration", "parse_response_topic"]

_SUBSCRIBE_ID = 1  # publishes take theirs from the codec, which never hands out one in flight


def parse_response_topic(topic: str) -> tuple[int, str, float | None] | None:
    """``$dps/registrations/res/{status}/?$rid={rid}[&retry-after=N]`` → (status, rid,
    retry-after); None for any other topic."""
    if not topic.startswith(RESPONSE_PREFIX):
        return None
    status, sep, query = topic[len(RESPONSE_PREFIX):].partition("/?")
    if not sep or not status.isdigit():
        return None
    rid, retry = "", None
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "$rid":
            rid = value
        elif name == "retry-after" and value.isdigit():
            retry = float(value)
    return int(status), rid, retry


class _DpsMqttProtocol(asyncio.Protocol):
    """Feeds the codec, PUBACKs the server's QoS 1 answers, and resolves the one waiter: for a
    CONNACK or SUBACK, or for the answer to ``_rid`` once our PUBLISH ``_pid`` is PUBACKed."""

    def __init__(self) -> None:
        self.conn = MqttConnection(Role.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.closed: str | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._expect: type[Packet] | None = None
        self._rid = ""
        self._pid = 0
        self._acked = False
        self._response: DpsResponse | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            if isinstance(event, ConnectionClosed):
                self._lost(event.reason)
                return
            if isinstance(event, Publish):
                self._publish(event)
            elif isinstance(event, PubAck):
                if event.packet_id == self._pid:
                    self._acked = True
                    self._answer_ready()
            elif self._expect is not None and isinstance(event, self._expect):
                self._expect = None
                self._resolve(event)

    def _publish(self, packet: Publish) -> None:
        if packet.qos == 1 and packet.packet_id is not None:
            self.send(PubAck(packet.packet_id))
        parsed = parse_response_topic(packet.topic)
        if parsed is not None and parsed[1] == self._rid and self._response is None:
            self._response = DpsResponse(parsed[0], parsed[1], parsed[2],
                                         response_body(packet.payload))
            self._answer_ready()

    def _answer_ready(self) -> None:
        if self._acked and self._response is not None and self._rid:
            response, self._response, self._rid = self._response, None, ""
            self._resolve(response)

    def _resolve(self, value: object) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(value)

    def eof_received(self) -> bool:
        self._lost("the server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(f"connection lost: {exc}" if exc else "connection closed")

    def _lost(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost(f"the MQTT connection closed: {self.closed}"))

    # -- for MqttRegistration ----------------------------------------------------------------
    def send(self, packet: Packet) -> None:
        if self.closed is not None or self.transport is None:
            raise ConnectionLost(f"the MQTT connection is closed: {self.closed}")
        try:
            self.transport.write(self.conn.send(packet))
        except LocalProtocolError as exc:
            raise ConnectionLost(f"cannot send {type(packet).__name__}: {exc}") from None

    def expect(self, packet_type: type[Packet]) -> asyncio.Future[Any]:
        """A future for the next packet of that type (call right after sending its cause)."""
        self._expect = packet_type
        return self._arm()

    def request(self, topic: str, payload: bytes, rid: str) -> asyncio.Future[Any]:
        """Publish at QoS 1; the future gets the answer whose ``$rid`` is ``rid``."""
        pid = self.conn.next_packet_id()
        self.send(Publish(topic, payload, 1, pid))  # the answer cannot arrive before we wait
        self._rid, self._pid, self._acked, self._response = rid, pid, False, None
        return self._arm()

    def _arm(self) -> asyncio.Future[Any]:
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        if self.closed is not None:
            self._lost(self.closed)
        return waiter

    def close(self) -> None:
        if self.transport is None:
            return
        if self.closed is None:
            self.closed = "closed by the client"
            try:
                self.transport.write(self.conn.send(Disconnect()))
            except LocalProtocolError:
                pass
        self.transport.close()


class MqttRegistration:
    """One device: connect (new TLS), subscribe, register, poll until assigned, disconnect.
    ``key`` None: an X.509 device, whose certificate is in ``tls`` and whose CONNECT has no
    password. 429 and 5xx answers are re-sent after ``retry-after`` (2 s when absent)."""

    def __init__(self, host: str, id_scope: str, registration_id: str, key: str | None, *,
                 tls: TlsClientContext, port: int = 8883, connect_host: str | None = None,
                 poll_immediately: bool = False, timeout: float = 30.0) -> None:
        self.host = host
        self.id_scope = id_scope
        self.registration_id = registration_id
        self.key = key
        self.tls = tls
        self.port = port
        self.connect_host = connect_host or host
        self.poll_immediately = poll_immediately
        self.timeout = timeout
        self._rid = 0

    @property
    def username(self) -> str:
        return (f"{self.id_scope}/registrations/{self.registration_id}/"
                f"api-version={API_VERSION}&ClientVersion={CLIENT_VERSION}")

    def password(self) -> bytes | None:
        if self.key is None:
            return None
        resource = f"{self.id_scope}/registrations/{self.registration_id}"
        return sas.generate(resource, self.key).encode()

    async def register(self) -> dict[str, Any]:
        """The final operation status (``assigned``); raises ProvisioningError, MqttError or
        TimeoutError."""
        mqtt: _DpsMqttProtocol | None = None
        try:
            async with asyncio.timeout(self.timeout):
                _, mqtt = await open_tls(_DpsMqttProtocol, self.connect_host, self.port,
                                         self.tls, self.host)
                await self._connect(mqtt)
                return await self._run(mqtt)
        except TimeoutError as exc:
            if str(exc):
                raise
            raise TimeoutError(f"registration not finished within {self.timeout:g} s") from None
        finally:
            if mqtt is not None:
                mqtt.close()

    async def _connect(self, mqtt: _DpsMqttProtocol) -> None:
        mqtt.send(Connect(client_id=self.registration_id, username=self.username,
                          password=self.password(), keep_alive=DEFAULT_KEEP_ALIVE))
        connack: ConnAck = await mqtt.expect(ConnAck)
        if connack.return_code != ConnAckCode.ACCEPTED:
            raise ConnectRefused(connack.return_code)
        mqtt.send(Subscribe(_SUBSCRIBE_ID, ((dps_topics.RESPONSE_FILTER, 1),)))
        suback: SubAck = await mqtt.expect(SubAck)
        if not suback.return_codes or suback.return_codes[0] == 0x80:
            raise MqttError(f"the server refused the subscription to "
                            f"{dps_topics.RESPONSE_FILTER}")

    async def _run(self, mqtt: _DpsMqttProtocol) -> dict[str, Any]:
        body = json.dumps({"registrationId": self.registration_id, "payload": None}).encode()
        response = await self._exchange(mqtt, dps_topics.REGISTER_PREFIX, "", body, "register")
        while True:
            status = response.body if isinstance(response.body, dict) else {}
            state = status.get("status")
            operation_id = status.get("operationId", "")
            if state == "assigned":
                return status
            if state == "failed":
                reg = status.get("registrationState") or {}
                raise ProvisioningError(
                    f"{reg.get('errorCode', 'failed')}: "
                    f"{reg.get('errorMessage', 'registration failed')}",
                    status=response.status, error_code=reg.get("errorCode"))
            if state != "assigning" or not operation_id:
                raise ProvisioningError(f"unexpected registration status {state!r}",
                                        status=response.status)
            if not self.poll_immediately:
                await _pause(response)
            query = f"&operationId={urllib.parse.quote(operation_id, safe='')}"
            response = await self._exchange(mqtt, dps_topics.POLL_PREFIX, query, b"",
                                            "operation status")

    async def _exchange(self, mqtt: _DpsMqttProtocol, prefix: str, query: str, body: bytes,
                        what: str) -> DpsResponse:
        """One request; a 429/5xx answer is re-sent after ``retry-after``."""
        while True:
            self._rid += 1
            rid = str(self._rid)
            response: DpsResponse = await mqtt.request(f"{prefix}?$rid={rid}{query}", body, rid)
            if response.status < 300:
                return response
            if response.status != 429 and response.status < 500:
                raise response_error(response, what)
            await _pause(response)


async def _pause(response: DpsResponse) -> None:
    await asyncio.sleep(response.retry_after if response.retry_after is not None
                        else DEFAULT_RETRY_AFTER)
