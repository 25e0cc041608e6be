"""IoT Hub device client over MQTT (protocol.md §7): telemetry, twin GET, reported patches.

The same key that registered with DPS signs the hub SAS (group keys are derived first), so
a device provisioned by ``DpsDeviceClient`` connects with ``assigned_hub`` and ``device_id``.
An X.509 device (``key`` None) presents the same client certificate and sends no password.
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
import uuid
from typing import Any

from ..protocol import hub_topics, sas
from ..protocol.mqtt import Publish
from .mqtt_session import DEFAULT_TIMEOUT, MqttSession

API_VERSION = "2021-04-12"
DEFAULT_PORT = 8883
TWIN_RES_PREFIX = "$iothub/twin/res/"


class HubRequestError(Exception):
    """The hub answered a twin request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def telemetry_topic(device_id: str, properties: dict[str, str] | None = None, *,
                    content_type: str | None = None, content_encoding: str | None = None,
                    message_id: str | None = None) -> str:
    """``devices/{id}/messages/events/{bag}`` with the bag URL-encoded as Python does it."""
    pairs: list[tuple[str, str]] = []
    if message_id:
        pairs.append(("$.mid", message_id))
    if content_type:
        pairs.append(("$.ct", content_type))
    if content_encoding:
        pairs.append(("$.ce", content_encoding))
    pairs.extend((properties or {}).items())
    bag = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    return f"devices/{device_id}/messages/events/{bag}"


def parse_twin_response(topic: str) -> tuple[int, dict[str, str]] | None:
    """``$iothub/twin/res/{status}/?$rid=…[&$version=…]`` → (status, params)."""
    if not topic.startswith(TWIN_RES_PREFIX):
        return None
    status_text, _, query = topic[len(TWIN_RES_PREFIX):].partition("/?")
    if not status_text.isdigit():
        return None
    return int(status_text), dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


class HubDeviceClient:
    """One device connection to one hub; ``async with`` connects and disconnects."""

    def __init__(self, hub_host: str, device_id: str, key: str | None, *,
                 ssl_context: ssl.SSLContext | None, port: int = DEFAULT_PORT,
                 timeout: float = DEFAULT_TIMEOUT, connect_host: str | None = None) -> None:
        self.hub_host = hub_host
        self.device_id = device_id
        self._key = key
        self._ssl = ssl_context
        self.port = port
        self.timeout = timeout
        self.connect_host = connect_host or hub_host
        self._session: MqttSession | None = None
        self._twin_subscribed = False

    @property
    def username(self) -> str:
        return f"{self.hub_host}/{self.device_id}/?api-version={API_VERSION}"

    def password(self) -> str | None:
        if self._key is None:
            return None
        return sas.generate(f"{self.hub_host}/devices/{self.device_id}", self._key)

    async def connect(self) -> None:
        self._session = await MqttSession.connect(
            self.connect_host, self.port, self._ssl, client_id=self.device_id,
            username=self.username, password=self.password(), response_timeout=self.timeout,
            server_hostname=self.hub_host)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HubDeviceClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> MqttSession:
        if self._session is None:
            raise RuntimeError("the hub device client is not connected")
        return self._session

    async def send_telemetry(self, payload: bytes | str | dict[str, Any],
                             properties: dict[str, str] | None = None, *,
                             content_type: str | None = None,
                             content_encoding: str | None = None,
                             message_id: str | None = None) -> None:
        """Publish at QoS 1 and return once the hub acknowledged (PUBACK)."""
        if isinstance(payload, dict):
            payload = json.dumps(payload)
            content_type = content_type or "application/json"
            content_encoding = content_encoding or "utf-8"
        body = payload.encode() if isinstance(payload, str) else payload
        topic = telemetry_topic(self.device_id, properties, content_type=content_type,
                                content_encoding=content_encoding, message_id=message_id)
        await self.session.publish(topic, body, 1)

    async def get_twin(self) -> dict[str, Any]:
        """``{"desired": {…, "$version"}, "reported": {…, "$version"}}``."""
        status, _, body = await self._twin_request("$iothub/twin/GET/", b"")
        if status != 200:
            raise HubRequestError(status, _message(body))
        return json.loads(body)

    async def patch_reported(self, patch: dict[str, Any]) -> int | None:
        """Send a reported-properties patch; returns the new reported ``$version``."""
        status, params, body = await self._twin_request(
            "$iothub/twin/PATCH/properties/reported/", json.dumps(patch).encode())
        if status not in (200, 204):
            raise HubRequestError(status, _message(body))
        version = params.get("$version")
        return int(version) if version and version.isdigit() else None

    async def _twin_request(self, prefix: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if not self._twin_subscribed:
            await self.session.subscribe(hub_topics.TWIN_RESPONSE_FILTER, 1)
            self._twin_subscribed = True
        rid = str(uuid.uuid4())

        def match(packet: Publish) -> bool:
            parsed = parse_twin_response(packet.topic)
            return parsed is not None and parsed[1].get("$rid") == rid

        packet = await self.session.request(f"{prefix}?$rid={rid}", body, match)
        parsed = parse_twin_response(packet.topic)
        assert parsed is not None
        return parsed[0], parsed[1], packet.payload


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace") or "no details"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("Message") or data)
    return str(data)
