"""The MQTT-over-TLS listener: a thin asyncio shell around ``MqttEndpoint``."""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

from .endpoint import MqttEndpoint, SessionRouter

HANDSHAKE_TIMEOUT = 30.0


class MqttProtocol(asyncio.Protocol):
    def __init__(self, router: SessionRouter, connect_timeout: float) -> None:
        self._router = router
        self._connect_timeout = connect_timeout
        self._endpoint: MqttEndpoint | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._endpoint = MqttEndpoint(
            self._router, self._transport.write, self._transport.close,
            peer=str(peer), pause=self._pause, connect_timeout=self._connect_timeout)

    def _pause(self, paused: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if paused:
            self._transport.pause_reading()
        else:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._endpoint is not None:
            self._endpoint.feed(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._endpoint is not None:
            self._endpoint.connection_lost()


async def start_mqtt_listener(router: SessionRouter, host: str, port: int,
                              ctx: ssl.SSLContext, *, connect_timeout: float) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: MqttProtocol(router, connect_timeout), host, port, ssl=ctx,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT, reuse_address=True)
