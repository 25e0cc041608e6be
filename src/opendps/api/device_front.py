"""The DPS device routes on a lean HTTP/1.1 layer (httptools) in front of aiohttp.

Why: aiohttp's handler, request and response objects cost about 0.2 ms of CPU per request on
the benchmark VMs (docs/benchmarks.md, round 9: the floor served by httptools needed 0.4-0.5
ms less per registration than the same floor on aiohttp), and a registration storm is two
such requests per device, each device on a new connection. The device API needs little of
what aiohttp offers: three routes, small JSON bodies, no streaming.

A connection whose first request is a device route (register, operation status, registration
status) is answered here. Any other first request (the service API, the hub registry, the
MQTT WebSocket upgrade, the console) hands the connection, with every byte read so far, to
aiohttp's own handler, which serves it as before. A later request that is not a device route
is handed over the same way when it starts a read of its own (a client that waits for each
answer); one pipelined behind a device request in the same read cannot be cut out of the
parser's input, so the connection closes after the answers before it, and the client retries
it on a new connection (RFC 9112 §9.3.2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote

import httptools

from ..protocol.errors import DpsError, ErrorCode
from ..protocol.ids import guid
from ..protocol.registration import MAX_REQUEST_BYTES
from ..provisioning.engine import ProvisioningEngine
from . import device
from .device_wire import Answer, device_route, error_answer, render, reply_answer

log = logging.getLogger("opendps.api")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PIPELINE_LIMIT = 16  # answers owed on one connection before it stops reading
KEEPALIVE_S = 75.0  # a connection with nothing read and nothing owed for this long closes
MAX_HEAD = 64 * 1024  # request line and headers (aiohttp: 8 KiB a line, 32 KiB of fields)


class _HandOff(Exception):
    """Raised from a parser callback: this request belongs to aiohttp."""


class _Finish(Exception):
    """Raised from a parser callback: the client asked to close after this request."""


class _Request:
    __slots__ = ("auth", "body", "close", "kind", "params", "query", "size")

    def __init__(self, kind: str, params: dict[str, str], query: str) -> None:
        self.kind, self.params, self.query = kind, params, query
        self.auth: str | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.close = False


class DeviceFront(asyncio.Protocol):
    """One connection: device requests answered here, in order; anything else handed over."""

    def __init__(self, engine: ProvisioningEngine, fallback: Callable[[], asyncio.Protocol],
                 *, serve_device: bool = True, headers: tuple[tuple[str, str], ...] = (),
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._engine = engine
        self._fallback = fallback
        self._serve = serve_device
        self._extra = list(headers)
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url: list[bytes] = []
        self._req: _Request | None = None
        self._auth: str | None = None
        self._expect = False
        self._declared = 0  # Content-Length, when given
        # the bytes of the request being parsed, while they can still be handed over whole
        self._raw: list[bytes] | None = None
        self._idle = True  # no request partly read
        self._completed_in_read = 0
        self._tail: asyncio.Future[None] | None = None  # the last answer being made
        self._in_flight = 0
        self._after: Callable[[], None] | None = None  # hand-off or close, once answered
        self._throttled = False  # reading paused for PIPELINE_LIMIT
        self._timer: asyncio.TimerHandle | None = None
        self._seen = 0.0  # loop time of the last read
        self._done = False  # no more requests are read on this connection
        self._head = 0  # bytes read while the current request's head was incomplete

    # -- asyncio ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._seen = self._loop.time()
        self._timer = self._loop.call_later(KEEPALIVE_S, self._idle_check)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._seen = self._loop.time()  # the timer reads it, rather than being re-armed
        self._completed_in_read = 0
        if self._raw is not None:
            self._raw.append(data)
        elif self._idle:
            self._raw = [data]  # kept until the request shows whether it is ours
        try:
            self._parser.feed_data(data)
            if not self._idle and self._req is None:  # still inside a request's head
                self._head += len(data)
                if self._head > MAX_HEAD:
                    log.info("request head over %d bytes from %s", MAX_HEAD, self._peer())
                    self._refuse(f"request head over {MAX_HEAD} bytes")
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HandOff) and self._raw is not None:
                self._stop(self._hand_off)
            elif isinstance(exc.__context__, _HandOff | _Finish):
                self._stop(self._close)
            else:  # a URL httptools cannot split, or a fault of ours: the request fails alone
                log.info("bad HTTP request from %s: %r", self._peer(), exc.__context__,
                         exc_info=not isinstance(exc.__context__, httptools.HttpParserError))
                self._refuse("malformed HTTP request")
        except httptools.HttpParserUpgrade:  # CONNECT or an upgrade: handed over before
            self._stop(self._close)
        except httptools.HttpParserError as exc:
            log.info("malformed HTTP request from %s: %s", self._peer(), exc)
            self._refuse("malformed HTTP request")

    def eof_received(self) -> bool:
        self._done = True
        return False  # a TLS transport closes on the peer's EOF either way

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._transport = None
        self._cancel_timer()

    def _idle_check(self) -> None:
        """aiohttp's keep-alive timeout, for the connections served here."""
        self._timer = None
        if self._transport is None or self._done:
            return
        quiet = self._loop.time() - self._seen
        if quiet >= KEEPALIVE_S and not self._in_flight:
            self._close()
            return
        wait = KEEPALIVE_S - quiet if quiet < KEEPALIVE_S else KEEPALIVE_S
        self._timer = self._loop.call_later(wait, self._idle_check)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._idle = False
        self._head = 0
        self._url = []
        self._auth = None
        self._expect = False
        self._declared = 0
        if self._completed_in_read:  # pipelined behind a request of this read
            self._raw = None

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"authorization":
            self._auth = value.decode("latin-1")
        elif lower == b"expect":
            self._expect = value.lower() == b"100-continue"
        elif lower == b"content-length" and value.isdigit():
            self._declared = int(value)
        elif lower == b"upgrade":
            raise _HandOff()

    def on_headers_complete(self) -> None:
        url = httptools.parse_url(b"".join(self._url))
        path = unquote((url.path or b"/").decode("latin-1"), errors="replace")
        method = self._parser.get_method().decode("latin-1")
        route = device_route(method, path) if self._serve else None
        if route is None:
            raise _HandOff()
        self._raw = None  # ours: nothing of it is handed over any more
        req = self._req = _Request(route[0], route[1], (url.query or b"").decode("latin-1"))
        req.auth = self._auth
        if self._declared > MAX_REQUEST_BYTES:  # refused before the body is sent or read
            req.size = self._declared
            self._answer_too_large(req)
        if self._expect and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        req = self._req
        if req is not None:
            req.size += len(body)
            if req.size > MAX_REQUEST_BYTES:
                self._answer_too_large(req)  # without reading the rest (it could be endless)
            req.body.append(body)

    def on_message_complete(self) -> None:
        req, self._req = self._req, None
        self._idle = True
        self._completed_in_read += 1
        if req is None:
            return
        req.close = not self._parser.should_keep_alive()
        self._answer(req)
        if req.close:
            raise _Finish()  # stop reading; _stop closes once the answers are out

    # -- answering --------------------------------------------------------------------------
    def _answer(self, req: _Request) -> None:
        self._queue(self._result(req), req.close)

    def _answer_too_large(self, req: _Request) -> NoReturn:
        """413 now, then close: the rest of the body is never read."""
        self._req = None
        req.close = True
        self._answer(req)
        raise _Finish()

    def _queue(self, result: Awaitable[Answer], close: bool) -> None:
        """Answers are made concurrently and written in request order."""
        previous = self._tail
        self._in_flight += 1
        self._tail = self._loop.create_task(self._send_in_turn(result, previous, close))
        if self._in_flight >= PIPELINE_LIMIT and self._transport is not None:
            self._throttled = True  # a client that pipelines without reading waits
            self._transport.pause_reading()

    async def _send_in_turn(self, result: Awaitable[Answer],
                            previous: asyncio.Future[None] | None, close: bool) -> None:
        try:
            status, body, headers = await result
            if previous is not None:
                await previous  # never raises: this method does not
            self._write(status, body, headers, close)
        except Exception:  # pragma: no cover - _result answers every failure itself
            log.exception("answering a device request failed")
            self._close()
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._after is not None:
                after, self._after = self._after, None
                after()
            elif self._throttled and self._in_flight < PIPELINE_LIMIT and not self._done:
                self._throttled = False
                if self._transport is not None:
                    self._transport.resume_reading()

    async def _result(self, req: _Request) -> Answer:
        try:
            if req.size > MAX_REQUEST_BYTES:
                raise device.too_large()
            query = dict(reversed(parse_qsl(req.query, keep_blank_values=True)))
            request = device.registration_request(
                req.params, query, req.auth, b"".join(req.body),
                device.client_chain(self._transport))
            engine = self._engine
            if req.kind == "register":
                reply = await engine.register(request)
            elif req.kind == "operation":
                reply = await engine.operation_status(request, req.params["operation_id"])
            else:
                reply = await engine.registration_status(request)
            status, body, headers = reply_answer(reply, self._extra)
            if req.kind == "register" and (op := reply.body.get("operationId")):
                headers.append(("Location", device.location(req.params, op)))
            return status, body, headers
        except DpsError as err:
            status, body, headers = error_answer(err, guid())
        except Exception:
            tracking_id = guid()
            log.exception("internal error (trackingId %s)", tracking_id)
            status, body, headers = error_answer(
                DpsError(ErrorCode.INTERNAL, "An internal error occurred"), tracking_id)
        return status, body, [*self._extra, *headers]

    def _write(self, status: int, body: bytes, headers: list[tuple[str, str]],
               close: bool) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(render(status, body, headers, close))

    def _refuse(self, message: str) -> None:
        """A request this layer cannot read on from: a DPS 400, then the connection closes."""
        status, body, headers = error_answer(DpsError(ErrorCode.BAD_REQUEST, message), guid())

        async def fixed() -> Answer:
            return status, body, [*self._extra, *headers]

        self._queue(fixed(), True)
        self._stop(self._close)

    # -- leaving ----------------------------------------------------------------------------
    def _stop(self, then: Callable[[], None]) -> None:
        """No more reading here; ``then`` runs once every answer owed is written."""
        if self._after is not None:
            return
        self._done = True
        if self._transport is not None:
            self._transport.pause_reading()
        if self._in_flight:
            self._after = then
        else:
            then()

    def _close(self) -> None:
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    def _hand_off(self) -> None:
        transport, raw = self._transport, b"".join(self._raw or ())
        self._raw = None
        if transport is None or transport.is_closing():
            return
        self._cancel_timer()  # aiohttp keeps its own
        handler = self._fallback()
        transport.set_protocol(handler)
        self._transport = None
        handler.connection_made(transport)
        if raw:
            handler.data_received(raw)
        transport.resume_reading()

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "?"


def front_factory(engine: Any, fallback: Callable[[], asyncio.Protocol], *,
                  serve_device: bool = True, headers: tuple[tuple[str, str], ...] = ()
                  ) -> Callable[[], DeviceFront]:
    """The HTTPS listener's protocol factory; the loop is looked up once, not per connection."""
    loop = asyncio.get_running_loop()

    def make() -> DeviceFront:
        return DeviceFront(engine, fallback, serve_device=serve_device, headers=headers,
                           loop=loop)

    return make
