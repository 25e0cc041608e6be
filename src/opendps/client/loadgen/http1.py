"""Just enough HTTP/1.1 for the DPS device API: a sans-I/O response parser and the one
connection it runs on.

The DPS device API needs two request shapes (PUT register, GET operation); their answers have
a ``Content-Length`` or, through some proxies, chunked bodies. ``ResponseParser`` turns bytes
into ``HttpResponse``s; ``HttpConnection`` is the asyncio protocol that writes a request and
resolves one future with the answer, so a connection costs no task and no stream objects.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["HttpConnection", "HttpResponse", "ResponseParser", "format_request"]

MAX_HEAD = 64 * 1024  # a DPS answer's head is a few hundred bytes


class HttpProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this parser understands."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None


def format_request(method: str, path: str, host: str, body: bytes = b"",
                   authorization: str | None = None) -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: opendps-bench\r\n"
            f"Accept: application/json\r\n")
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    if body or method in ("PUT", "POST"):
        head += f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


class ResponseParser:
    """Bytes in (``feed``), complete responses out (``next_response``, None until one is)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._head: tuple[int, dict[str, str]] | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_response(self) -> HttpResponse | None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise HttpProtocolError("response head too long")
                return None
            self._head = _parse_head(bytes(self._buffer[:end]))
            del self._buffer[:end + 4]
        status, headers = self._head
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked()
            if body is None:
                return None
        else:
            length = int(headers.get("content-length", "0"))
            if len(self._buffer) < length:
                return None
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
        self._head = None
        return HttpResponse(status, headers, body)

    def _chunked(self) -> bytes | None:
        """The whole body once every chunk and the last one arrived (trailers not supported)."""
        body = bytearray()
        at = 0
        buf = self._buffer
        while True:
            line_end = buf.find(b"\r\n", at)
            if line_end < 0:
                return None
            try:
                size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
            except ValueError:
                raise HttpProtocolError("bad chunk size") from None
            start = line_end + 2
            if len(buf) < start + size + 2:
                return None
            if size == 0:
                del buf[:start + 2]
                return bytes(body)
            body += buf[start:start + size]
            at = start + size + 2


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request in flight: ``request`` writes and awaits."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = ResponseParser()
        self._waiter: asyncio.Future[HttpResponse] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            response = self._parser.next_response()
        except (HttpProtocolError, ValueError) as exc:
            self._finish(exc)
            if self.transport is not None:
                self.transport.abort()
            return
        if response is not None and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(response)

    def eof_received(self) -> bool:
        self._finish(ConnectionResetError("the server closed the connection before answering"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionResetError(
            "the server closed the connection before answering"))

    async def request(self, data: bytes) -> HttpResponse:
        if self.closed or self.transport is None:
            raise ConnectionResetError("the connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _finish(self, exc: BaseException) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
