"""A closed MQTT connection is freed by reference counting alone: no cycle between the
session, the endpoint and the transports is left for the cyclic collector (which, with
thousands of dead connections and their TLS objects, paused the server for tens of ms)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from opendps.protocol.mqtt import ConnAck, Connect, Decoder, Disconnect, encode
from opendps.transport.mqtt_listener import start_mqtt_listener

from .conftest import client_context, open_tls
from .pki_files import PkiFiles


class Session:
    def __init__(self, out: object) -> None:
        self.out = out  # as DpsSession and HubSession keep their outbox

    async def on_connect(self, packet: Connect) -> int:
        return 0

    async def on_packet(self, packet: object) -> None:
        return None

    def on_close(self) -> None:
        return None


@pytest.mark.parametrize("ending", ["disconnect", "drop"])
async def test_a_closed_connection_needs_no_garbage_collection(
        test_pki: PkiFiles, ending: str) -> None:
    refs: list[weakref.ref] = []

    def router(packet: Connect, endpoint: object) -> Session:
        session = Session(endpoint)
        refs.extend([weakref.ref(endpoint), weakref.ref(session)])
        return session

    server = await start_mqtt_listener(router, "127.0.0.1", 0, test_pki.tls, connect_timeout=5)
    port = server.sockets[0].getsockname()[1]
    gc.collect()
    gc.disable()
    try:
        reader, writer = await open_tls(port, client_context(test_pki))
        writer.write(encode(Connect("dev", username="u", password=None, keep_alive=30)))
        decoder = Decoder()
        while (packet := decoder.next_packet()) is None:
            decoder.feed(await reader.read(1024))
        assert isinstance(packet, ConnAck)
        if ending == "disconnect":
            writer.write(encode(Disconnect()))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
        for _ in range(100):
            if all(ref() is None for ref in refs):
                break
            await asyncio.sleep(0.02)
        assert len(refs) == 2
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()
        server.close()
