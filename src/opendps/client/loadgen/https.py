"""A lean DPS device registration over HTTPS: raw HTTP/1.1 on one asyncio stream.

aiohttp's session, connector and cookie machinery cost more client CPU per new connection than
the server spends on a registration, which would make the client the bottleneck on a 2-core
machine. The DPS device API needs only two request shapes (PUT register, GET operation), both
with ``Content-Length`` answers, so this speaks just that, on one connection per device.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from typing import Any

from ...protocol import sas

API_VERSION = "2019-03-31"
DEFAULT_RETRY_AFTER = 2.0


class HttpRegistrationError(Exception):
    """DPS answered with an error status or ended the operation ``failed``."""

    def __init__(self, message: str, *, status: int | None = None,
                 error_code: int | str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None


async def read_response(reader: asyncio.StreamReader) -> HttpResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return HttpResponse(status, headers, bytes(body))
    length = int(headers.get("content-length", "0"))
    return HttpResponse(status, headers, await reader.readexactly(length) if length else b"")


class HttpsRegistration:
    """One device: connect (new TLS), PUT register, GET the operation until it is assigned."""

    def __init__(self, host: str, id_scope: str, registration_id: str, key: str | None, *,
                 ssl_context: ssl.SSLContext, port: int = 443, connect_host: str | None = None,
                 poll_immediately: bool = False, timeout: float = 30.0) -> None:
        self.host = host
        self.id_scope = id_scope
        self.registration_id = registration_id
        self.key = key
        self.ssl_context = ssl_context
        self.port = port
        self.connect_host = connect_host or host
        self.poll_immediately = poll_immediately
        self.timeout = timeout
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def _authorization(self) -> str | None:
        if self.key is None:
            return None
        return sas.generate(f"{self.id_scope}/registrations/{self.registration_id}", self.key,
                            key_name="registration")

    async def register(self) -> dict[str, Any]:
        """The final operation status (``assigned``); raises HttpRegistrationError."""
        async with asyncio.timeout(self.timeout):
            try:
                return await self._run()
            finally:
                self._close()

    async def _run(self) -> dict[str, Any]:
        base = f"/{self.id_scope}/registrations/{self.registration_id}"
        auth = self._authorization()
        body = json.dumps({"registrationId": self.registration_id}).encode()
        response = await self._call("PUT", f"{base}/register?api-version={API_VERSION}", body,
                                    auth)
        while True:
            doc = response.json() if isinstance(response.json(), dict) else {}
            state = doc.get("status")
            if state == "assigned":
                return doc
            if state == "failed":
                reg = doc.get("registrationState") or {}
                raise HttpRegistrationError(f"failed: {reg.get('errorMessage')}",
                                            status=response.status,
                                            error_code=reg.get("errorCode") or "failed")
            if state != "assigning" or not doc.get("operationId"):
                raise HttpRegistrationError(f"unexpected status {state!r}",
                                            status=response.status, error_code="bad-status")
            await self._pause(response)
            response = await self._call(
                "GET", f"{base}/operations/{doc['operationId']}?api-version={API_VERSION}",
                b"", auth)

    async def _call(self, method: str, path: str, body: bytes,
                    auth: str | None) -> HttpResponse:
        """One request; 429 and 5xx are repeated after ``retry-after``, as devices do."""
        while True:
            response = await self._send(method, path, body, auth)
            if response.status < 300:
                return response
            if response.status != 429 and response.status < 500:
                doc = response.json()
                code = doc.get("errorCode") if isinstance(doc, dict) else None
                raise HttpRegistrationError(f"{method} answered {response.status}",
                                            status=response.status, error_code=code)
            await self._pause(response, force=True)

    async def _send(self, method: str, path: str, body: bytes,
                    auth: str | None) -> HttpResponse:
        if self._stream is None:
            self._stream = await asyncio.open_connection(
                self.connect_host, self.port, ssl=self.ssl_context, server_hostname=self.host)
        reader, writer = self._stream
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}",
                "User-Agent: opendps-bench", "Accept: application/json"]
        if auth:
            head.append(f"Authorization: {auth}")
        if method == "PUT":
            head += ["Content-Type: application/json; charset=utf-8",
                     f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        response = await read_response(reader)
        if response.headers.get("connection", "").lower() == "close":
            self._close()  # the next request opens a new connection
        return response

    async def _pause(self, response: HttpResponse, *, force: bool = False) -> None:
        if self.poll_immediately and not force:
            return
        value = response.headers.get("retry-after", "")
        await asyncio.sleep(float(value) if value.isdigit() else DEFAULT_RETRY_AFTER)

    def _close(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None
