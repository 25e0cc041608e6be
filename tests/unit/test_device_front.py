"""``DeviceFront`` in process: which requests it answers, what it hands to aiohttp (exactly
the bytes read), and that neither read boundaries nor random bytes change or break it."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendps.api import device_front
from opendps.api.device_front import DeviceFront
from opendps.protocol.errors import DpsError, ErrorCode
from opendps.provisioning.engine import RegistrationRequest, Reply

SCOPE = "0ne00000001"


class Engine:
    """Answers like the engine: register 202, a known operation 200, the rest 404."""

    def __init__(self) -> None:
        self.seen: list[RegistrationRequest] = []

    async def register(self, req: RegistrationRequest) -> Reply:
        self.seen.append(req)
        await asyncio.sleep(0)  # a real store call may suspend
        return Reply(202, {"operationId": f"op-{req.registration_id}", "status": "assigning"},
                     retry_after=3)

    async def operation_status(self, req: RegistrationRequest, operation_id: str) -> Reply:
        self.seen.append(req)
        if operation_id.startswith("op-"):
            return Reply(200, {"operationId": operation_id, "status": "assigned"})
        raise DpsError(ErrorCode.OPERATION_NOT_FOUND, "Operation not found")

    async def registration_status(self, req: RegistrationRequest) -> Reply:
        self.seen.append(req)
        return Reply(200, {"registrationId": req.registration_id, "status": "assigned"})


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.protocol: Any = None
        self.paused = False

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Fallback(asyncio.Protocol):
    """Stands in for aiohttp's RequestHandler: records what it is given."""

    made: ClassVar[list[Fallback]] = []

    def __init__(self) -> None:
        self.data = bytearray()
        self.transport: Any = None
        Fallback.made.append(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data


def register(reg: str = "dev-1", body: bytes = b'{"registrationId": "dev-1"}') -> bytes:
    return (f"PUT /{SCOPE}/registrations/{reg}/register?api-version=2021-06-01 HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: SharedAccessSignature sr=a&sig=b&se=1\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def poll(op: str) -> bytes:
    return (f"GET /{SCOPE}/registrations/dev-1/operations/{op}?api-version=2021-06-01 "
            "HTTP/1.1\r\nHost: x\r\n\r\n").encode()


SERVICE = b"GET /enrollments/dev-1?api-version=2021-10-01 HTTP/1.1\r\nHost: x\r\n\r\n"


async def feed(chunks: list[bytes]) -> tuple[DeviceFront, Transport, Engine]:
    engine, transport = Engine(), Transport()
    front = DeviceFront(engine, Fallback, headers=(("x-opendps-instance", "t"),))  # type: ignore[arg-type]
    front.connection_made(transport)
    for chunk in chunks:
        if transport.protocol is not None:
            transport.protocol.data_received(chunk)  # the TLS layer feeds the new protocol
        else:
            front.data_received(chunk)
        for _ in range(5):
            await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    return front, transport, engine


def statuses(out: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    Fallback.made.clear()


async def test_device_requests_are_answered_here_and_nothing_goes_to_aiohttp() -> None:
    _, transport, engine = await feed([register(), poll("op-1"), poll("gone")])
    assert statuses(bytes(transport.out)) == [202, 200, 404]
    assert Fallback.made == [] and not transport.closed
    assert engine.seen[0].registration_id == "dev-1"
    assert engine.seen[0].authorization == "SharedAccessSignature sr=a&sig=b&se=1"
    assert engine.seen[0].body == b'{"registrationId": "dev-1"}'
    out = bytes(transport.out)
    assert b"x-opendps-instance: t\r\n" in out and b"retry-after: 3\r\n" in out
    assert f"Location: /{SCOPE}/registrations/dev-1/operations/op-dev-1\r\n".encode() in out
    assert b"x-ms-error-code: 404202\r\n" in out


async def test_a_first_request_for_aiohttp_hands_over_every_byte() -> None:
    first = SERVICE + register()[:20]
    _, transport, engine = await feed([first, register()[20:]])
    [handler] = Fallback.made
    assert transport.protocol is handler and handler.transport is transport
    assert bytes(handler.data) == SERVICE + register()
    assert transport.out == b"" and engine.seen == [] and not transport.paused


async def test_a_later_request_for_aiohttp_is_handed_over_at_a_read_boundary() -> None:
    _, transport, _ = await feed([register(), SERVICE[:10], SERVICE[10:]])
    [handler] = Fallback.made
    assert statuses(bytes(transport.out)) == [202]
    assert bytes(handler.data) == SERVICE


async def test_a_websocket_upgrade_goes_to_aiohttp() -> None:
    upgrade = (b"GET /$iothub/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
    _, transport, _ = await feed([upgrade])
    assert transport.protocol is Fallback.made[0]
    assert bytes(Fallback.made[0].data) == upgrade


async def test_a_device_route_with_the_device_role_elsewhere_goes_to_aiohttp() -> None:
    engine, transport = Engine(), Transport()
    front = DeviceFront(engine, Fallback, serve_device=False)  # type: ignore[arg-type]
    front.connection_made(transport)
    front.data_received(register())
    assert bytes(Fallback.made[0].data) == register() and engine.seen == []


def _pipeline() -> bytes:
    return (register("dev-1") + poll("op-1") + register("dev-2", b"{}") + poll("nope")
            + register("dev-3", b'{"payload": {"k": [1, 2, 3]}}'))


def _undated(out: bytes) -> bytes:
    """What differs from one answer to the next: the time and an error's tracking ID."""
    out = re.sub(rb"Date: [^\r]*", b"", out)
    out = re.sub(rb"x-ms-request-id: [^\r]*", b"", out)
    out = re.sub(rb'"trackingId":"[^"]*"', b"", out)
    return re.sub(rb'"timestampUtc":"[^"]*"', b"", out)


_WHOLE = asyncio.run(feed([_pipeline()]))[1].out


def test_the_pipeline_answered_in_one_read() -> None:
    assert statuses(bytes(_WHOLE)) == [202, 200, 202, 404, 202]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, len(_pipeline()) - 1), min_size=1, max_size=12, unique=True))
def test_read_boundaries_do_not_change_the_answers(cuts: list[int]) -> None:
    """Any split of a pipelined stream into reads gives the same answers, byte for byte
    apart from the time and the tracking ID."""
    data = _pipeline()
    cuts = sorted(cuts)
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    Fallback.made.clear()
    _, transport, engine = asyncio.run(feed(chunks))
    assert _undated(bytes(transport.out)) == _undated(bytes(_WHOLE))
    assert [r.registration_id for r in engine.seen][:3] == ["dev-1", "dev-1", "dev-2"]
    assert Fallback.made == []


_edits = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["set", "cut", "add"]),
                            st.binary(min_size=1, max_size=20)), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(_edits, st.integers(1, 10_000))
def test_damaged_streams_get_whole_answers_or_a_close_never_an_exception(
        edits: list[tuple[int, str, bytes]], cut_at: int) -> None:
    data = bytearray(_pipeline() + SERVICE)
    for pos, how, piece in edits:
        pos %= len(data)
        if how == "set":
            data[pos] = piece[0]
        elif how == "cut":
            del data[pos:pos + len(piece)]
        else:
            data[pos:pos] = piece
    Fallback.made.clear()
    cut = 1 + cut_at % max(1, len(data) - 1)
    _, transport, _ = asyncio.run(feed([bytes(data[:cut]), bytes(data[cut:])]))
    out = bytes(transport.out)
    # whatever was answered is whole HTTP responses with JSON bodies
    for head in re.split(rb"(?=HTTP/1\.1 \d{3} )", out)[1:]:
        if head.startswith(b"HTTP/1.1 100 "):
            continue
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        json.loads(head.partition(b"\r\n\r\n")[2][:length])
    if b" 400 Bad Request" in out:  # a malformed request ends the connection
        assert transport.closed


async def test_connection_close_request_closes_after_its_answer() -> None:
    req = register().replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    _, transport, engine = await feed([req + register("dev-2")])
    assert statuses(bytes(transport.out)) == [202]
    assert b"Connection: close\r\n" in bytes(transport.out)
    assert transport.closed and len(engine.seen) == 1


async def test_a_client_that_pipelines_without_reading_is_paused_then_answered() -> None:
    gate = asyncio.Event()

    class Slow(Engine):
        async def register(self, req: RegistrationRequest) -> Reply:
            await gate.wait()
            return await super().register(req)

    engine, transport = Slow(), Transport()
    front = DeviceFront(engine, Fallback)  # type: ignore[arg-type]
    front.connection_made(transport)
    front.data_received(b"".join(register(f"dev-{i}") for i in range(40)))
    await asyncio.sleep(0)
    assert transport.paused and transport.out == b""  # 16 owed: it stopped reading
    gate.set()
    for _ in range(50):
        await asyncio.sleep(0)
    assert statuses(bytes(transport.out)) == [202] * 40 and not transport.paused
    ids = re.findall(rb'"operationId":"op-(dev-\d+)"', bytes(transport.out))
    assert ids == [f"dev-{i}".encode() for i in range(40)]


async def test_an_idle_connection_closes_after_the_keepalive_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_front, "KEEPALIVE_S", 0.05)
    engine, busy, idle = Engine(), Transport(), Transport()
    fronts = [DeviceFront(engine, Fallback) for _ in range(2)]  # type: ignore[arg-type]
    fronts[0].connection_made(busy)
    fronts[1].connection_made(idle)
    for i in range(6):  # a request every 20 ms keeps this one open
        fronts[0].data_received(register(f"dev-{i}"))
        await asyncio.sleep(0.02)
    assert not busy.closed and idle.closed
    await asyncio.sleep(0.1)
    assert busy.closed  # quiet now, so it goes too
    assert statuses(bytes(busy.out)) == [202] * 6


async def test_an_endless_head_is_refused_with_a_dps_400() -> None:
    engine, transport = Engine(), Transport()
    front = DeviceFront(engine, Fallback)  # type: ignore[arg-type]
    front.connection_made(transport)
    front.data_received(b"PUT /" + SCOPE.encode() + b"/registrations/dev-1/register HTTP/1.1\r\n")
    for _ in range(10):
        front.data_received(b"X-Filler: " + b"a" * 16_000 + b"\r\n")
        if transport.paused:
            break
    for _ in range(5):
        await asyncio.sleep(0)
    assert statuses(bytes(transport.out)) == [400] and transport.closed
    assert b"request head over 65536 bytes" in bytes(transport.out)
    assert Fallback.made == [] and engine.seen == []


async def test_an_oversized_body_is_answered_before_it_ends() -> None:
    head = (f"PUT /{SCOPE}/registrations/dev-1/register?api-version=2021-06-01 HTTP/1.1\r\n"
            "Host: x\r\nContent-Length: 10000000\r\n\r\n").encode()
    _, transport, engine = await feed([head] + [b"x" * 16_000] * 7)
    assert statuses(bytes(transport.out)) == [413] and transport.closed
    assert b"x-ms-error-code: 413002\r\n" in bytes(transport.out) and engine.seen == []


async def test_a_declared_oversized_body_is_refused_before_100_continue() -> None:
    head = (f"PUT /{SCOPE}/registrations/dev-1/register?api-version=2021-06-01 HTTP/1.1\r\n"
            "Host: x\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n").encode()
    _, transport, engine = await feed([head])
    out = bytes(transport.out)
    assert statuses(out) == [413] and b"100 Continue" not in out and transport.closed
    assert engine.seen == []


async def test_http_1_0_closes_after_its_answer() -> None:
    req = register().replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
    _, transport, engine = await feed([req])
    assert statuses(bytes(transport.out)) == [202] and transport.closed
    assert b"Connection: close\r\n" in bytes(transport.out) and len(engine.seen) == 1
