"""Who broke the protocol: the peer (MqttProtocolError) or this side (LocalProtocolError).

The split follows h11: a remote error means "close the connection, maybe after a last word",
a local error means the calling code has a bug and nothing was sent.
"""

from __future__ import annotations

from .packets import ConnAckCode


class MqttProtocolError(Exception):
    """The peer sent something MQTT 3.1.1 forbids; the connection must be closed.

    ``connack_hint`` is set only when the offending packet was a CONNECT that the spec says must
    be answered with a refusing CONNACK before closing (§3.1.2.2: level -> rc 1, §3.1.3.1: client
    id -> rc 2). Any other malformed CONNECT is closed without a CONNACK (§3.1.4-1).
    """

    def __init__(self, message: str, *, connack_hint: ConnAckCode | None = None) -> None:
        super().__init__(message)
        self.connack_hint = connack_hint


class PacketTooLargeError(MqttProtocolError):
    """The fixed header announced more bytes than ``max_packet_size`` allows.

    Raised as soon as the header is complete, so an oversized packet is never buffered.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"packet of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class UnsupportedProtocolLevelError(MqttProtocolError):
    """A CONNECT for another MQTT version (3.1 says level 3, 5.0 says 5): answer rc 1."""

    def __init__(self, protocol_name: str, level: int) -> None:
        super().__init__(
            f"unsupported protocol {protocol_name!r} level {level} (only 'MQTT' level 4)",
            connack_hint=ConnAckCode.UNACCEPTABLE_PROTOCOL_VERSION,
        )
        self.protocol_name = protocol_name
        self.level = level


class LocalProtocolError(Exception):
    """This side tried to send or do something illegal; a bug in the caller, nothing was sent."""
