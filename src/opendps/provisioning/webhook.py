"""The custom allocation webhook client: POST the ``AllocationRequest`` (``webhook_wire.py``),
retry what Azure retries, and turn the answer into a hub or a DPS error.

Retries follow DPS's troubleshooting table (seed digest 3, K-8 and N-6): a webhook answering 429
or 5xx, timing out or unreachable is retried 10 times, the first after 1 s and each wait 9 s
longer than the one before (1, 10, 19, …, 82 s), then the allocation fails with 400207. Each
attempt has its own timeout (10 s by default; a cold Azure Function took 4.3 s in the seed).
Everything is configurable and the sleep is injected, so tests run without waiting.

Secrets never reach a log line or an error: the URL is logged through ``mask_url`` and the
request's repr leaves out the URL and the enrollment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from ..protocol.errors import DpsError, ErrorCode
from .webhook_wire import (
    AllocationRequest,
    AllocationResult,
    build_request_body,
    failed,
    mask_url,
    read_allocation_response,
    status_error,
)

__all__ = [
    "AllocationRequest",
    "AllocationResult",
    "RetryPolicy",
    "WebhookAllocator",
    "is_retryable_status",
    "mask_url",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds per attempt
# a reply larger than this is not an allocation response
MAX_RESPONSE_BYTES = 1 << 20
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

SessionSource = aiohttp.ClientSession | Callable[[], aiohttp.ClientSession] | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Linear back-off: wait ``initial + n * increment`` seconds before retry ``n`` (from 0)."""

    retries: int = 10
    initial: float = 1.0
    increment: float = 9.0

    def delay(self, retry: int) -> float:
        return self.initial + retry * self.increment

    def delays(self) -> list[float]:
        return [self.delay(n) for n in range(self.retries)]


def is_retryable_status(status: int) -> bool:
    """429 and 5xx are worth another try; other 4xx will answer the same again."""
    return status == 429 or status >= 500


class _Transient(Exception):
    """An attempt that may succeed if repeated (timeout, connection refused or reset)."""


class WebhookAllocator:
    """Asks a custom allocation webhook which hub a device goes to.

    ``session`` is a ``ClientSession`` to borrow (never closed here) or a factory called once on
    first use (that session is owned and closed by ``close()``); None means ``ClientSession``.
    ``ca_file`` is the trust root for HTTPS webhooks (PEM bundle); None trusts the system store.
    """

    def __init__(
        self,
        session: SessionSource = None,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if isinstance(session, aiohttp.ClientSession):
            self._session: aiohttp.ClientSession | None = session
            self._factory: Callable[[], aiohttp.ClientSession] | None = None
        else:
            self._session = None
            self._factory = session or aiohttp.ClientSession
        self._owned: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=os.fspath(ca_file)) if ca_file else True)
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self.max_response_bytes = max_response_bytes

    async def __aenter__(self) -> WebhookAllocator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owned is not None:
            owned, self._owned, self._session = self._owned, None, None
            await owned.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            assert self._factory is not None
            self._session = self._owned = self._factory()
        return self._session

    # -- the call -----------------------------------------------------------------------------
    async def allocate(self, request: AllocationRequest) -> AllocationResult:
        """The hub (and optional initial twin and payload) the webhook chose, or a DpsError:
        400207 failed, 400208 no hub returned, 400209 webhook 401 or a hub not linked."""
        where = mask_url(request.webhook_url)
        try:
            scheme = urlsplit(request.webhook_url).scheme.lower()
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            raise failed("the webhook URL must be a valid http or https URL", webhook=where)
        body = json.dumps(build_request_body(request), separators=(",", ":")).encode()
        last = ""
        for attempt in range(self.retry.retries + 1):
            if attempt:
                await self._sleep(self.retry.delay(attempt - 1))
            try:
                status, answer = await self._post(request.webhook_url, body)
            except _Transient as exc:
                last = str(exc)
                log.warning("custom allocation webhook %s for %s: %s (attempt %d)", where,
                            request.registration_id, last, attempt + 1)
                continue
            if 200 <= status < 300:
                return read_allocation_response(answer, request.linked_hubs)
            if not is_retryable_status(status):
                err = status_error(status, answer)
                log.info("custom allocation webhook %s refused %s with %d: %s", where,
                         request.registration_id, status, err.info.get("webhookResponse", ""))
                raise err
            last = f"status code: {status}"
            log.warning("custom allocation webhook %s for %s answered %d (attempt %d)", where,
                        request.registration_id, status, attempt + 1)
        attempts = self.retry.retries + 1
        reason = f" with {last}" if last.startswith("status") else f": {last}"
        raise DpsError(ErrorCode.CUSTOM_ALLOCATION_FAILED,
                       f"Custom allocation failed{reason} (gave up after {attempts} attempts)",
                       {"webhook": where, "attempts": str(attempts)})

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes]:
        """One attempt: (status, body), ``_Transient`` to retry, DpsError to stop."""
        try:
            async with self._client().post(
                url, data=body, headers=_HEADERS, ssl=self._ssl, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                return resp.status, await self._read(resp)
        except TimeoutError:
            raise _Transient(f"the webhook did not answer within {self.timeout:g} s") from None
        except aiohttp.ClientSSLError as exc:
            # a certificate that is not trusted now will not be trusted in a minute either
            raise failed("TLS with the webhook failed (is its certificate trusted?)",
                         tlsError=type(exc).__name__) from None
        except aiohttp.InvalidURL:
            raise failed("the webhook URL is invalid") from None
        except aiohttp.ClientError as exc:
            raise _Transient(f"the webhook could not be reached ({type(exc).__name__})") from None

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_response_bytes:
                raise failed(f"the webhook's response is larger than "
                             f"{self.max_response_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
