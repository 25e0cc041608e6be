"""What the service clients share: TLS trust, SAS headers, the error body, If-Match spelling.

DPS (``ProvisioningServiceErrorDetails``) and IoT Hub spell their error bodies differently, so
one parser reads both and the CLI can print one line whatever answered.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from ..protocol import sas
from ..protocol.connstr import ConnectionString
from .tls import client_ssl_context

TOKEN_TTL = 3600
DEFAULT_TIMEOUT = 30.0


class ServiceError(Exception):
    """A non-2xx answer. ``error_code`` is the service's code (DPS: six digits) when it sent one.

    The message is the server's own text; it never contains the key we signed with.
    """

    def __init__(self, status: int, error_code: int | str | None, message: str,
                 tracking_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.tracking_id = tracking_id

    def __str__(self) -> str:
        code = self.error_code if self.error_code is not None else self.status
        return f"{code}: {self.message}" if self.message else f"HTTP {self.status}"


def service_token(cs: ConnectionString, ttl: int = TOKEN_TTL) -> str:
    """A service SAS: ``sr`` = the host, ``skn`` = the policy (protocol.md §0.2, §4.5)."""
    return sas.generate(cs.host_name, cs.key, ttl=ttl, key_name=cs.key_name)


def if_match_header(etag: str | None) -> dict[str, str]:
    """``*`` stays bare; anything else is sent quoted exactly once (§4.4)."""
    if not etag:
        return {}
    etag = etag.strip()
    if etag == "*" or (len(etag) >= 2 and etag[0] == etag[-1] == '"'):
        return {"If-Match": etag}
    return {"If-Match": f'"{etag}"'}


def _pick(body: dict[str, Any], *names: str) -> Any:
    lowered = {k.lower(): v for k, v in body.items()}
    for name in names:
        if name.lower() in lowered and lowered[name.lower()] not in (None, ""):
            return lowered[name.lower()]
    return None


def parse_error(status: int, text: str, headers: Any = None) -> ServiceError:
    """Build a ServiceError from a DPS or hub error body; tolerate non-JSON bodies."""
    header_code = headers.get("x-ms-error-code") if headers is not None else None
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = _pick(body, "errorCode") or header_code
    message = _pick(body, "message", "ExceptionMessage") or text.strip()[:200]
    if isinstance(message, str) and message.startswith("ErrorCode:"):
        # IoT Hub: "ErrorCode:DeviceNotFound;Device xyz not found" (code inside the message)
        head, _, rest = message.partition(";")
        code = code or head[len("ErrorCode:"):]
        message = rest or message
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return ServiceError(status, code, str(message or f"HTTP {status}"),
                        _pick(body, "trackingId"))


async def check(response: aiohttp.ClientResponse) -> None:
    if response.status >= 400:
        raise parse_error(response.status, await response.text(), response.headers)


class RestClient:
    """An aiohttp session bound to one host, signing every request with a service SAS.

    ``base_url`` overrides ``https://{host}:{port}`` (tests serve plain HTTP on loopback);
    ``sr`` stays the connection string's host either way.
    """

    api_version: str = ""

    def __init__(self, connection: ConnectionString, *, ca_file: str | Path | None = None,
                 port: int = 443, base_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.connection = connection
        self.base_url = (base_url or f"https://{connection.host_name}:{port}").rstrip("/")
        self._ssl: ssl.SSLContext | bool = (
            client_ssl_context(ca_file) if self.base_url.startswith("https:") else False)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Authorization": service_token(self.connection),
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
        }
        headers.update(extra or {})
        return headers

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def params(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"api-version": self.api_version, **(extra or {})}

    async def call(self, method: str, path: str, *, body: Any = None,
                   headers: dict[str, str] | None = None,
                   params: dict[str, str] | None = None) -> tuple[Any, Any]:
        """One request; returns (decoded JSON or None, response headers); raises ServiceError."""
        data = json.dumps(body).encode() if body is not None else None
        async with self.session.request(
            method, self.url(path), params=self.params(params), data=data,
            headers=self.headers(headers), ssl=self._ssl,
        ) as response:
            await check(response)
            text = await response.text()
            return (json.loads(text) if text.strip() else None), response.headers
