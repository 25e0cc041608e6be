"""What ``device_front`` reads and writes: the device route a request is for, and answers as
HTTP/1.1 bytes in the services' shape (the same status, JSON and headers as ``responses``)."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ..protocol import jsontext
from ..protocol.errors import DpsError
from ..provisioning.engine import Reply
from . import device
from .responses import JSON, dps_error_headers
from .routes import resolve

Answer = tuple[int, bytes, list[tuple[str, str]]]  # status, JSON body, headers

_KINDS: dict[Any, str] = {device.register: "register",
                          device.operation_status: "operation",
                          device.registration_status: "status"}
_REASONS = {s.value: s.phrase for s in HTTPStatus}


class _Date:
    """The ``Date`` header, formatted once a second (as aiohttp does)."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second, self._text = now, formatdate(now, usegmt=True)
        return self._text


_date = _Date()


def device_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The device route a request is for (the one routing table: ``routes.ROUTES``)."""
    try:
        found = resolve(method, path)
    except web.HTTPMethodNotAllowed:
        return None
    if found is None:
        return None
    kind = _KINDS.get(found[0])
    return None if kind is None else (kind, found[1])


def render(status: int, body: bytes, headers: list[tuple[str, str]], close: bool) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Content-Type: {JSON}", f"Content-Length: {len(body)}", f"Date: {_date()}"]
    head.extend(f"{name}: {value}" for name, value in headers)
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body  # UTF-8, as aiohttp writes


def reply_answer(reply: Reply, extra: list[tuple[str, str]]) -> Answer:
    headers = list(extra)
    if reply.retry_after:
        headers.append(("retry-after", str(reply.retry_after)))
    return reply.status, jsontext.dumpb(reply.body), headers


def error_answer(err: DpsError, tracking_id: str) -> Answer:
    headers = list(dps_error_headers(err, tracking_id).items())
    return err.status, jsontext.dumpb(err.body(tracking_id)), headers
