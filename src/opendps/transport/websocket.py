"""MQTT over WebSocket on the HTTPS port: subprotocol ``mqtt``, any path (§2.4: the SDKs use
``/$iothub/websocket``, ``/`` and ``/mqtt``)."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from .endpoint import MqttEndpoint, SessionRouter


def websocket_handler(router: SessionRouter):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("mqtt",), max_msg_size=256 * 1024,
                                   heartbeat=None)
        await ws.prepare(request)
        pending: list[asyncio.Future] = []

        def write(data: bytes) -> None:
            if not ws.closed:
                pending.append(asyncio.ensure_future(ws.send_bytes(data)))
                del pending[:-32]

        def close() -> None:
            asyncio.ensure_future(ws.close())

        endpoint = MqttEndpoint(router, write, close, peer=str(request.remote))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    endpoint.feed(msg.data)
                elif msg.type in (WSMsgType.TEXT,):
                    endpoint.close("MQTT over WebSocket must use binary frames")
                    break
                else:
                    break
        finally:
            endpoint.connection_lost()
        return ws

    return handle
