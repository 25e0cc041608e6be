"""What an MQTT endpoint needs from the role it serves (DPS or hub): the shell owns bytes and
the protocol state machine; a session owns meaning."""

from __future__ import annotations

from typing import Protocol

from cryptography import x509

from ..protocol.mqtt import Connect, Packet


class Outbox(Protocol):
    # the certificate chain the client presented in the TLS handshake (leaf first)
    peer_chain: list[x509.Certificate]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None: ...

    def send(self, packet: Packet) -> None: ...

    def close(self, reason: str) -> None: ...


class Session(Protocol):
    """Packets arrive one at a time, each after the last one's ``on_packet`` has returned.
    A session may also define ``handle_now(packet: Publish) -> bool``: called instead, while
    nothing is pending, for a PUBLISH it can finish without awaiting; False hands it to
    ``on_packet`` as usual."""

    async def on_connect(self, packet: Connect) -> int:
        """Return the CONNACK return code (0 accepts)."""
        ...

    async def on_packet(self, packet: Packet) -> None: ...

    def on_close(self) -> None: ...
