"""A lean DPS device registration over HTTPS: PUT register, GET the operation until assigned.

aiohttp's session, connector and cookie machinery, and the stdlib loop's pure-Python SSL
transport, cost more client CPU per new connection than the server spends on a registration,
which would make the client the bottleneck on a 2-core machine. So each device opens one
pyOpenSSL connection (``client/tls_client.py``) and speaks raw HTTP/1.1 on it (``http1.py``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ...protocol import sas
from ..tls_client import open_tls
from ..tls_client_context import TlsClientContext
from .http1 import HttpConnection, HttpResponse, format_request

__all__ = ["API_VERSION", "DEFAULT_RETRY_AFTER", "HttpRegistrationError", "HttpResponse",
           "HttpsRegistration"]

API_VERSION = "2019-03-31"
DEFAULT_RETRY_AFTER = 2.0


class HttpRegistrationError(Exception):
    """DPS answered with an error status or ended the operation ``failed``."""

    def __init__(self, message: str, *, status: int | None = None,
                 error_code: int | str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class HttpsRegistration:
    """One device: connect (new TLS), PUT register, GET the operation until it is assigned.
    429 and 5xx answers are repeated after ``retry-after`` (2 s when absent), as devices do;
    ``poll_immediately`` skips only the wait between polls."""

    def __init__(self, host: str, id_scope: str, registration_id: str, key: str | None, *,
                 tls: TlsClientContext, port: int = 443, connect_host: str | None = None,
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
        self._http: HttpConnection | None = None

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
        response = await self._call(format_request(
            "PUT", f"{base}/register?api-version={API_VERSION}", self.host, body, auth))
        while True:
            doc = response.json()
            if not isinstance(doc, dict):
                doc = {}
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
            if not self.poll_immediately:
                await _pause(response)
            response = await self._call(format_request(
                "GET", f"{base}/operations/{doc['operationId']}?api-version={API_VERSION}",
                self.host, b"", auth))

    async def _call(self, request: bytes) -> HttpResponse:
        """One request; 429 and 5xx are repeated after ``retry-after``, as devices do."""
        while True:
            response = await self._send(request)
            if response.status < 300:
                return response
            if response.status != 429 and response.status < 500:
                doc = response.json()
                code = doc.get("errorCode") if isinstance(doc, dict) else None
                method = request[:request.index(b" ")].decode()
                raise HttpRegistrationError(f"{method} answered {response.status}",
                                            status=response.status, error_code=code)
            await _pause(response)

    async def _send(self, request: bytes) -> HttpResponse:
        if self._http is None or self._http.closed:
            _, self._http = await open_tls(HttpConnection, self.connect_host, self.port,
                                           self.tls, self.host)
        response = await self._http.request(request)
        if response.headers.get("connection", "").lower() == "close":
            self._close()  # the next request opens a new connection
        return response

    def _close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


async def _pause(response: HttpResponse) -> None:
    value = response.headers.get("retry-after", "")
    await asyncio.sleep(float(value) if value.isdigit() else DEFAULT_RETRY_AFTER)
