"""The MQTT-over-TLS listener: a thin asyncio shell around ``MqttEndpoint``, behind the TLS
transport that hands the client's certificate chain to the session (X.509 attestation)."""

from __future__ import annotations

import asyncio
from typing import cast

from .endpoint import MqttEndpoint, SessionRouter
from .tls import TlsConfig
from .tls_transport import HANDSHAKE_TIMEOUT, start_tls_server


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
            peer=str(peer), pause=self._pause, connect_timeout=self._connect_timeout,
            peer_chain=transport.get_extra_info("peercert_chain"))

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
        endpoint, self._endpoint, self._transport = self._endpoint, None, None
        if endpoint is not None:
            endpoint.connection_lost()


async def start_mqtt_listener(router: SessionRouter, host: str | list[str], port: int,
                              tls: TlsConfig, *,
                              connect_timeout: float,
                              handshake_timeout: float = HANDSHAKE_TIMEOUT,
                              reuse_port: bool = False) -> asyncio.Server:
    """``reuse_port``: worker processes share the port, the kernel spreads connections."""
    return await start_tls_server(lambda: MqttProtocol(router, connect_timeout), host, port, tls,
                                  handshake_timeout=handshake_timeout, reuse_port=reuse_port)
