"""A PUBLISH the session can finish at once (telemetry) is handed to ``handle_now`` inside
``feed``, skipping the worker's wake-up, but only while nothing is pending, so packets are
still handled in the order they came."""

from __future__ import annotations

import asyncio
import logging

import pytest

from opendps.protocol.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    Packet,
    Publish,
    Subscribe,
    encode,
)
from opendps.transport.endpoint import MqttEndpoint


class Session:
    def __init__(self, accept_now: bool = True, fail: bool = False) -> None:
        self.accept_now = accept_now
        self.fail = fail
        self.seen: list[tuple[str, Packet]] = []  # ("now" | "worker", packet), in order

    async def on_connect(self, packet: Connect) -> int:
        return 0

    def handle_now(self, packet: Publish) -> bool:
        if self.fail:
            raise RuntimeError("broken session")
        if self.accept_now:
            self.seen.append(("now", packet))
        return self.accept_now

    async def on_packet(self, packet: Packet) -> None:
        await asyncio.sleep(0)  # a real handler suspends
        self.seen.append(("worker", packet))

    def on_close(self) -> None:
        return None


async def connected(session: Session) -> tuple[MqttEndpoint, list[bytes], list[bool]]:
    written: list[bytes] = []
    closed: list[bool] = []
    endpoint = MqttEndpoint(lambda packet, ep: session, written.append,
                            lambda: closed.append(True))
    endpoint.feed(encode(Connect("dev", username="u", password=None, keep_alive=0)))
    for _ in range(20):  # the worker answers the CONNECT and goes idle
        await asyncio.sleep(0)
    decoder = Decoder()
    decoder.feed(b"".join(written))
    assert decoder.next_packet() == ConnAck(False, 0)
    return endpoint, written, closed


def publish(n: int) -> Publish:
    return Publish("devices/dev/messages/events/", b"%d" % n, 1, n)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_telemetry_is_handled_inside_feed_while_the_worker_is_idle() -> None:
    session = Session()
    endpoint, _, _ = await connected(session)
    endpoint.feed(b"".join(encode(publish(n)) for n in (1, 2, 3)))
    # no loop iteration has run: only the synchronous path can have seen them
    assert session.seen == [("now", publish(1)), ("now", publish(2)), ("now", publish(3))]
    endpoint.close("done")


async def test_a_packet_behind_an_unfinished_one_waits_its_turn() -> None:
    session = Session()
    endpoint, _, _ = await connected(session)
    subscribe = Subscribe(7, (("devices/dev/messages/devicebound/#", 1),))
    endpoint.feed(encode(subscribe) + encode(publish(1)) + encode(publish(2)))
    assert session.seen == []  # SUBSCRIBE went to the worker, so the PUBLISHes follow it
    await settle()
    assert session.seen == [("worker", subscribe), ("worker", publish(1)),
                            ("worker", publish(2))]
    endpoint.feed(encode(publish(3)))  # idle again: straight through
    assert session.seen[-1] == ("now", publish(3))
    endpoint.close("done")


async def test_what_the_session_declines_goes_to_the_worker() -> None:
    session = Session(accept_now=False)
    endpoint, _, _ = await connected(session)
    endpoint.feed(encode(publish(1)))
    assert session.seen == []
    await settle()
    assert session.seen == [("worker", publish(1))]
    endpoint.close("done")


async def test_a_failing_handle_now_closes_only_that_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    session = Session(fail=True)
    endpoint, _, closed = await connected(session)
    with caplog.at_level(logging.ERROR, logger="opendps.mqtt"):
        endpoint.feed(encode(publish(1)) + encode(publish(2)))
    assert endpoint.closed and closed == [True]
    assert "MQTT session from ? failed" in caplog.text
    assert session.seen == []
