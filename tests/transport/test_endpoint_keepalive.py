"""The endpoint's keep-alive timer (MQTT 3.1.1 §3.1.2.10) driven without sockets: every packet
moves the deadline, and the connection closes 1.5 x keep-alive after the last one."""

from __future__ import annotations

import asyncio

from opendps.protocol.mqtt import ConnAck, Connect, Decoder, Packet, PingReq, PingResp, encode
from opendps.transport.endpoint import MqttEndpoint


class Accepting:
    async def on_connect(self, packet: Connect) -> int:
        return 0

    async def on_packet(self, packet: Packet) -> None:
        return None

    def on_close(self) -> None:
        return None


async def test_packets_postpone_the_keep_alive_deadline() -> None:
    written = Decoder()
    closed = asyncio.Event()
    endpoint = MqttEndpoint(lambda _packet, _endpoint: Accepting(), written.feed, closed.set)
    loop = asyncio.get_running_loop()
    start = loop.time()
    endpoint.feed(encode(Connect("dev", username="u", password=None, keep_alive=1)))
    await asyncio.sleep(1.0)  # the first deadline would be start + 1.5
    endpoint.feed(encode(PingReq()))  # now it is start + 2.5
    await asyncio.sleep(0.9)
    assert not closed.is_set()
    await asyncio.wait_for(closed.wait(), 3)
    assert 2.4 <= loop.time() - start < 3.5
    assert isinstance(written.next_packet(), ConnAck)
    assert isinstance(written.next_packet(), PingResp)
