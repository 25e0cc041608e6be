"""MQTT over WebSocket on the HTTPS port: subprotocol ``mqtt``, any path (§2.4: the SDKs use
``/$iothub/websocket``, ``/`` and ``/mqtt``)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from .endpoint import MqttEndpoint, SessionRouter

MAX_FRAME = 256 * 1024


def websocket_handler(router: SessionRouter, connect_timeout: float):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("mqtt",), max_msg_size=MAX_FRAME, heartbeat=None)
        await ws.prepare(request)
        outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def writer() -> None:
            """One writer keeps MQTT bytes in order; None means close."""
            while (data := await outgoing.get()) is not None:
                if ws.closed:
                    break
                await ws.send_bytes(data)
            await ws.close()

        writing = asyncio.create_task(writer())
        transport = request.transport  # the TLS transport knows the client's chain
        chain = transport.get_extra_info("peercert_chain") if transport is not None else None
        endpoint = MqttEndpoint(router, outgoing.put_nowait, lambda: outgoing.put_nowait(None),
                                peer=str(request.remote), connect_timeout=connect_timeout,
                                peer_chain=chain)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    endpoint.feed(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    endpoint.close("MQTT over WebSocket must use binary frames")
                    break
                else:
                    break
        finally:
            endpoint.connection_lost()
            outgoing.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writing, 5)
        return ws

    return handle
