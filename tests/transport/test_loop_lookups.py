"""A connection keeps its event loop instead of asking asyncio for it on every packet or
write (and a store unit its task's: tests/store/test_unit.py): on Python 3.11 each
``asyncio.get_running_loop()`` (and each ``current_task()`` or ``ensure_future()`` without a
loop) makes a ``getpid`` system call, which was 23 of the 32 such calls per MQTT registration
(the rest are OpenSSL's random generator checking for a fork). Counted at the ``asyncio``
functions our modules call (``loop_lookups``, tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

from opendps.protocol.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    Publish,
    Subscribe,
    encode,
)
from opendps.transport.endpoint import MqttEndpoint

from .conftest import client_context, open_tls, start_echo
from .pki_files import PkiFiles


class Session:
    async def on_connect(self, packet: Connect) -> int:
        return 0

    async def on_packet(self, packet: Packet) -> None:
        await asyncio.sleep(0)

    def on_close(self) -> None:
        return None


async def test_an_mqtt_endpoint_finds_its_loop_once(loop_lookups: Counter[str]) -> None:
    written: list[bytes] = []
    closed: list[bool] = []
    endpoint = MqttEndpoint(lambda packet, ep: Session(), written.append,
                            lambda: closed.append(True), connect_timeout=30)
    assert loop_lookups == {"opendps.transport.endpoint.get_running_loop": 1}
    packets: list[Packet] = [Connect("dev", username="u", password=None, keep_alive=60),
                             Subscribe(1, [("$dps/registrations/res/#", 1)]),
                             *(Publish(f"$dps/registrations/PUT/iotdps-register/?$rid={n}",
                                       b"{}", 0, None) for n in range(5)),
                             Disconnect()]
    for packet in packets:  # one at a time, each waking the worker
        endpoint.feed(encode(packet))
        for _ in range(10):
            await asyncio.sleep(0)
        endpoint.publish("$dps/registrations/res/202/?$rid=1", b"{}", qos=1)
    assert closed == [True]
    decoder = Decoder()
    decoder.feed(b"".join(written))
    assert decoder.next_packet() == ConnAck(False, 0)
    # the eight packets, the keep-alive timer and the close asked nothing more
    assert loop_lookups == {"opendps.transport.endpoint.get_running_loop": 1}


async def test_a_tls_connection_never_asks_for_its_loop(
        test_pki: PkiFiles, loop_lookups: Counter[str]) -> None:
    echo = await start_echo(test_pki)
    try:
        assert loop_lookups == {"opendps.transport.tls_transport.get_running_loop": 1}  # listening
        for _ in range(3):
            reader, writer = await open_tls(echo.port, client_context(test_pki))
            for n in range(4):
                writer.write(b"ping %d" % n)
                assert await reader.readexactly(6) == b"ping %d" % n
            writer.write(b"CLOSE")
            assert await reader.read() == b""
            writer.close()
        assert len(echo.apps) == 3
        # three handshakes, twelve answers, three closes: nothing more
        assert loop_lookups == {"opendps.transport.tls_transport.get_running_loop": 1}
    finally:
        echo.server.close()
