"""DPS device registration over MQTT with a symmetric key or an X.509 certificate (§2).

Register, then poll the operation until it is ``assigned`` or ``failed``, as the Python SDK
does, except that ``retry-after`` is honoured on every answer (or skipped with
``poll_immediately`` by a load generator that wants to measure the server, not the delay).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from ..protocol import dps_topics, sas
from ..protocol.mqtt import Publish
from .mqtt_session import DEFAULT_TIMEOUT, MqttSession

API_VERSION = "2019-03-31"
CLIENT_VERSION = "opendps"
DEFAULT_PORT = 8883
DEFAULT_RETRY_AFTER = 2.0
RESPONSE_PREFIX = "$dps/registrations/res/"


class ProvisioningError(Exception):
    """DPS said no: an error status, or an operation that ended ``failed``."""

    def __init__(self, message: str, *, status: int | None = None,
                 error_code: int | None = None, result: RegistrationResult | None = None,
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.result = result


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """The final ``RegistrationOperationStatus``; properties read ``registrationState``."""

    operation_id: str
    status: str
    registration_state: dict[str, Any]

    @property
    def device_id(self) -> str | None:
        return self.registration_state.get("deviceId")

    @property
    def assigned_hub(self) -> str | None:
        return self.registration_state.get("assignedHub")

    @property
    def substatus(self) -> str | None:
        return self.registration_state.get("substatus")


@dataclass(frozen=True, slots=True)
class DpsResponse:
    status: int
    rid: str
    retry_after: float | None
    body: Any


def parse_response(packet: Publish) -> DpsResponse | None:
    """``$dps/registrations/res/{status}/?$rid={rid}[&retry-after=N]``; None if not one."""
    if not packet.topic.startswith(RESPONSE_PREFIX):
        return None
    status_text, _, query = packet.topic[len(RESPONSE_PREFIX):].partition("/?")
    if not status_text.isdigit():
        return None
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    retry = params.get("retry-after")
    return DpsResponse(int(status_text), params.get("$rid", ""),
                       float(retry) if retry and retry.isdigit() else None,
                       response_body(packet.payload))


def response_body(payload: bytes) -> Any:
    """An answer's JSON body; None when it is empty or not JSON (the status still counts)."""
    try:
        return json.loads(payload) if payload.strip() else None
    except ValueError:
        return None


def response_error(response: DpsResponse, what: str) -> ProvisioningError:
    """The ``ProvisioningError`` for an error answer: its ``errorCode`` and ``message``."""
    body = response.body if isinstance(response.body, dict) else {}
    code = body.get("errorCode")
    message = body.get("message") or f"{what} answered {response.status}"
    return ProvisioningError(f"{code or response.status}: {message}", status=response.status,
                             error_code=code if isinstance(code, int) else None)


class DpsDeviceClient:
    """Registers one device. ``connect_host`` reaches a server whose name (``host``, checked
    against the certificate) does not resolve here. ``key`` None: an X.509 device, whose
    client certificate is in ``ssl_context`` and whose CONNECT carries no password (§2.1)."""

    def __init__(self, host: str, id_scope: str, registration_id: str, key: str | None, *,
                 ssl_context: ssl.SSLContext | None, port: int = DEFAULT_PORT,
                 timeout: float = DEFAULT_TIMEOUT, poll_immediately: bool = False,
                 connect_host: str | None = None, max_wait: float = 300.0) -> None:
        self.host = host
        self.id_scope = id_scope
        self.registration_id = registration_id
        self._key = key
        self._ssl = ssl_context
        self.port = port
        self.timeout = timeout
        self.poll_immediately = poll_immediately
        self.connect_host = connect_host or host
        self.max_wait = max_wait

    @property
    def username(self) -> str:
        return (f"{self.id_scope}/registrations/{self.registration_id}/"
                f"api-version={API_VERSION}&ClientVersion={CLIENT_VERSION}")

    def password(self) -> str | None:
        if self._key is None:
            return None
        return sas.generate(f"{self.id_scope}/registrations/{self.registration_id}", self._key)

    async def register(self, payload: Any = None) -> RegistrationResult:
        """Connect, register, poll to the end, disconnect. Raises ProvisioningError,
        TimeoutError or MqttError."""
        session = await MqttSession.connect(
            self.connect_host, self.port, self._ssl, client_id=self.registration_id,
            username=self.username, password=self.password(), response_timeout=self.timeout,
            server_hostname=self.host)
        try:
            async with asyncio.timeout(self.max_wait):
                await session.subscribe(dps_topics.RESPONSE_FILTER, 1)
                return await self._run(session, payload)
        except TimeoutError as exc:
            if str(exc):
                raise
            raise TimeoutError(f"registration not finished within {self.max_wait:g} s") from None
        finally:
            await session.close()

    async def _run(self, session: MqttSession, payload: Any) -> RegistrationResult:
        body = json.dumps({"registrationId": self.registration_id, "payload": payload}).encode()
        response = await self._exchange(session, dps_topics.REGISTER_PREFIX, "", body,
                                         "register")
        while True:
            status = response.body if isinstance(response.body, dict) else {}
            state = status.get("status")
            operation_id = status.get("operationId", "")
            if state == "assigned":
                return RegistrationResult(operation_id, state,
                                          status.get("registrationState") or {})
            if state == "failed":
                result = RegistrationResult(operation_id, state,
                                            status.get("registrationState") or {})
                reg = result.registration_state
                raise ProvisioningError(
                    f"{reg.get('errorCode', 'failed')}: "
                    f"{reg.get('errorMessage', 'registration failed')}",
                    status=response.status, error_code=reg.get("errorCode"), result=result)
            if state != "assigning" or not operation_id:
                raise ProvisioningError(f"unexpected registration status {state!r}",
                                        status=response.status)
            await self._pause(response)
            query = f"&operationId={urllib.parse.quote(operation_id, safe='')}"
            response = await self._exchange(session, dps_topics.POLL_PREFIX, query, b"",
                                            "operation status")

    async def _exchange(self, session: MqttSession, prefix: str, query: str, body: bytes,
                        what: str) -> DpsResponse:
        """One request; a 429/5xx answer is re-sent after ``retry-after`` (§2.3)."""
        while True:
            rid = str(uuid.uuid4())

            def match(packet: Publish, rid: str = rid) -> bool:
                parsed = parse_response(packet)
                return parsed is not None and parsed.rid == rid

            packet = await session.request(f"{prefix}?$rid={rid}{query}", body, match)
            response = parse_response(packet)
            assert response is not None
            if response.status < 300:
                return response
            if response.status < 429:
                raise response_error(response, what)
            await self._pause(response)

    async def _pause(self, response: DpsResponse) -> None:
        if not self.poll_immediately:
            delay = response.retry_after if response.retry_after is not None \
                else DEFAULT_RETRY_AFTER
            await asyncio.sleep(delay)
