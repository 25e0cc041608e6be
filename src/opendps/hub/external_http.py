"""The HTTP side of ``ExternalHub``: service SAS, retries, and hub answers turned into DPS errors.

Split from ``external.py`` so the registry operations read as the protocol (GET, PUT, DELETE)
while transport failures are handled in one place. A hub that refuses our credentials, answers
5xx, or cannot be reached is ``HUB_UNAVAILABLE`` for the device: it is not the device's fault.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from ..protocol import sas
from ..protocol.connstr import ConnectionString
from ..protocol.errors import DpsError, ErrorCode

log = logging.getLogger("opendps.hub.external")

API_VERSION = "2021-04-12"
TOKEN_TTL = 3600
# A token is replaced this long before it expires, so no request carries one about to lapse.
TOKEN_MARGIN = 300
# Pauses before the two quick retries of a 5xx, a 429 or a failed connection.
RETRY_DELAYS = (0.2, 0.5)
RETRYABLE = frozenset({429, 500, 502, 503, 504})
MAX_DETAIL = 200


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    detail: str  # the hub's error text, scrubbed of secrets; "" on success


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """TLS 1.2+ with host names checked, trusting ``ca_file`` or the system store."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def error_detail(text: str) -> str:
    """IoT Hub's ``{"Message": "ErrorCode:X;text"}`` as ``X: text``; other bodies as they are."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {}
    message = ""
    if isinstance(body, dict):
        lowered = {str(k).lower(): v for k, v in body.items()}
        message = str(lowered.get("message") or "")
    message = message or text.strip()
    if message.startswith("ErrorCode:"):
        code, _, rest = message[len("ErrorCode:"):].partition(";")
        message = f"{code}: {rest}" if rest else code
    return message


class RegistryHttp:
    """An aiohttp session bound to one hub, signing every request with a service SAS."""

    def __init__(self, connection: ConnectionString, *, ca_file: str | None, port: int,
                 timeout: float, session: aiohttp.ClientSession | None) -> None:
        self._connection = connection
        self.host_name = connection.host_name
        host = f"[{self.host_name}]" if ":" in self.host_name else self.host_name
        self._base = f"https://{host}:{port}"
        self._ssl = ssl_context(ca_file)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._token = ""
        self._token_expiry = 0.0

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _authorization(self) -> str:
        now = time.time()
        if now >= self._token_expiry - TOKEN_MARGIN:
            self._token = sas.generate(self.host_name, self._connection.key, ttl=TOKEN_TTL,
                                       key_name=self._connection.key_name, now=now)
            self._token_expiry = now + TOKEN_TTL
        return self._token

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise RuntimeError(f"the session given for IoT hub {self.host_name} is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    def scrub(self, text: str) -> str:
        """Never let the key or our token (or its signature) reach a message or a log line."""
        secrets = [self._connection.key, self._token]
        if self._token:
            secrets += [part[4:] for part in self._token.split("&") if part.startswith("sig=")]
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def unavailable(self, why: str) -> DpsError:
        return DpsError(ErrorCode.HUB_UNAVAILABLE, self.scrub(f"IoT hub {self.host_name} {why}"))

    def failure(self, reply: Reply, method: str, path: str) -> DpsError:
        """An answer the operation did not expect (a 400 for an invalid id, say)."""
        code = ErrorCode.BAD_REQUEST if reply.status == 400 else ErrorCode.HUB_UNAVAILABLE
        detail = f" {reply.detail}" if reply.detail else ""
        return DpsError(code, self.scrub(
            f"IoT hub {self.host_name} rejected {method} {path}: {reply.status}{detail}"))

    async def call(self, method: str, path: str, body: Any = None, *,
                   if_match: str | None = None) -> Reply:
        """One registry request, with two quick retries on 5xx, 429 and connection failures.

        401/403, a timeout, or running out of retries raise ``DpsError(HUB_UNAVAILABLE)``;
        any other status is returned for the operation to judge.
        """
        url = URL(f"{self._base}{path}?api-version={API_VERSION}", encoded=True)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        last = ""
        for attempt in range(len(RETRY_DELAYS) + 1):
            if attempt:
                await asyncio.sleep(RETRY_DELAYS[attempt - 1])
            headers = {"Authorization": self._authorization(), "Accept": "application/json",
                       "Content-Type": "application/json; charset=utf-8"}
            if if_match is not None:
                headers["If-Match"] = if_match
            try:
                reply = await self._send(method, url, headers, data)
            except TimeoutError:
                raise self.unavailable(
                    f"did not answer {method} {path} within {self._timeout.total:g} s") from None
            except aiohttp.ClientSSLError as exc:
                raise self.unavailable(f"failed the TLS handshake: {_reason(exc)}") from None
            except (aiohttp.ClientError, OSError) as exc:
                last = f"could not be reached: {_reason(exc)}"
                log.warning("IoT hub %s %s %s: %s (attempt %d)", self.host_name, method, path,
                            self.scrub(last), attempt + 1)
                continue
            if reply.status in (401, 403):
                raise self.unavailable(
                    f"refused the registry request: {reply.status} {reply.detail}".rstrip())
            if reply.status in RETRYABLE:
                last = f"answered {method} {path} with {reply.status} {reply.detail}".rstrip()
                log.warning("IoT hub %s: %s (attempt %d)", self.host_name, self.scrub(last),
                            attempt + 1)
                continue
            return reply
        raise self.unavailable(f"{last} (after {len(RETRY_DELAYS)} retries)")

    async def _send(self, method: str, url: URL, headers: dict[str, str],
                    data: bytes | None) -> Reply:
        async with self._client().request(method, url, headers=headers, data=data,
                                          ssl=self._ssl, timeout=self._timeout) as response:
            text = await response.text()
            if response.status >= 400:
                return Reply(response.status, None, self.scrub(error_detail(text))[:MAX_DETAIL])
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            return Reply(response.status, parsed, "")


def _reason(exc: BaseException) -> str:
    """A short cause for the message; aiohttp's own strings can be long and repetitive."""
    inner = getattr(exc, "os_error", None) or exc.__cause__ or exc
    text = getattr(inner, "strerror", None) or str(inner) or type(inner).__name__
    return str(text)
