"""The load generator's sans-I/O pieces: the HTTP/1.1 response parser (every split offset) and
the DPS MQTT response topic."""

from __future__ import annotations

import pytest

from opendps.client.loadgen.http1 import HttpProtocolError, ResponseParser, format_request
from opendps.client.loadgen.mqtt import parse_response_topic
from opendps.protocol import dps_topics

LENGTH = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nRetry-After: 3\r\n"
          b"Content-Length: 15\r\n\r\n{\"status\":\"x\"}\n")
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\n{\"a\":\r\n3;ext=1\r\n 1}\r\n0\r\n\r\n")
EMPTY = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"


def _parse_split(wire: bytes, at: int) -> list:
    parser, out = ResponseParser(), []
    for piece in (wire[:at], wire[at:]):
        parser.feed(piece)
        while (response := parser.next_response()) is not None:
            out.append(response)
    return out


@pytest.mark.parametrize("wire", [LENGTH, CHUNKED, EMPTY, LENGTH + CHUNKED + EMPTY],
                         ids=["length", "chunked", "empty", "pipelined"])
def test_every_split_offset_gives_the_same_responses(wire: bytes) -> None:
    whole = _parse_split(wire, len(wire))
    for at in range(len(wire)):
        assert _parse_split(wire, at) == whole, at


def test_fields() -> None:
    [length, chunked, empty] = _parse_split(LENGTH + CHUNKED + EMPTY, 0)
    assert (length.status, length.headers["retry-after"]) == (202, "3")
    assert length.json() == {"status": "x"}
    assert (chunked.status, chunked.body, chunked.json()) == (200, b'{"a": 1}', {"a": 1})
    assert (empty.status, empty.body, empty.json()) == (429, b"", None)


def test_garbage_is_an_error() -> None:
    parser = ResponseParser()
    parser.feed(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(HttpProtocolError):
        parser.next_response()


def test_requests() -> None:
    assert format_request("GET", "/op?api-version=1", "h", authorization="SAS x") == (
        b"GET /op?api-version=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: opendps-bench\r\n"
        b"Accept: application/json\r\nAuthorization: SAS x\r\n\r\n")
    put = format_request("PUT", "/r", "h", b"{}")
    assert put.endswith(b"Content-Type: application/json; charset=utf-8\r\n"
                        b"Content-Length: 2\r\n\r\n{}")


@pytest.mark.parametrize(("topic", "parsed"), [
    (dps_topics.response_topic(202, "7", 3), (202, "7", 3.0)),
    (dps_topics.response_topic(200, "12"), (200, "12", None)),
    ("$dps/registrations/res/429/?$rid=1&retry-after=x", (429, "1", None)),
    ("$dps/registrations/res/401/?retry-after=1&$rid=a-b", (401, "a-b", 1.0)),
    ("$dps/registrations/res/abc/?$rid=1", None),
    ("$dps/registrations/res/200", None),
    ("devices/x/messages/devicebound/", None),
])
def test_response_topics(topic: str, parsed: tuple | None) -> None:
    assert parse_response_topic(topic) == parsed
