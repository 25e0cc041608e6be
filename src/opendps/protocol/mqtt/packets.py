"""MQTT 3.1.1 control packets as plain immutable values.

The dataclasses carry no behaviour and do no validation: the codec decides what is legal on the
wire (it refuses to encode or decode anything MQTT 3.1.1 forbids), the connection decides what is
legal when. Keeping them dumb lets tests build any packet they like.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar


class PacketType(IntEnum):
    """Control packet type: the high nibble of the first byte of the fixed header."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnAckCode(IntEnum):
    """CONNACK return codes (MQTT 3.1.1 §3.2.2.3); 6-255 are reserved."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class SubAckCode(IntEnum):
    """SUBACK return codes (§3.9.3): the granted QoS, or failure."""

    GRANTED_QOS_0 = 0
    GRANTED_QOS_1 = 1
    GRANTED_QOS_2 = 2
    FAILURE = 0x80


@dataclass(frozen=True, slots=True)
class Will:
    """The message the server publishes if the client vanishes without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Connect:
    packet_type: ClassVar[PacketType] = PacketType.CONNECT

    client_id: str
    username: str | None = None
    password: bytes | None = None
    keep_alive: int = 0
    clean_session: bool = True
    will: Will | None = None
    # Only 4 (3.1.1) is decodable; other values exist so tests can send what old clients send.
    protocol_level: int = 4


@dataclass(frozen=True, slots=True)
class ConnAck:
    packet_type: ClassVar[PacketType] = PacketType.CONNACK

    session_present: bool
    return_code: int


@dataclass(frozen=True, slots=True)
class Publish:
    packet_type: ClassVar[PacketType] = PacketType.PUBLISH

    topic: str
    payload: bytes
    qos: int = 0
    packet_id: int | None = None  # present iff qos > 0
    retain: bool = False
    dup: bool = False


@dataclass(frozen=True, slots=True)
class PubAck:
    packet_type: ClassVar[PacketType] = PacketType.PUBACK

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubRec:
    packet_type: ClassVar[PacketType] = PacketType.PUBREC

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubRel:
    packet_type: ClassVar[PacketType] = PacketType.PUBREL

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubComp:
    packet_type: ClassVar[PacketType] = PacketType.PUBCOMP

    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_type: ClassVar[PacketType] = PacketType.SUBSCRIBE

    packet_id: int
    topics: tuple[tuple[str, int], ...]  # (topic filter, requested QoS)


@dataclass(frozen=True, slots=True)
class SubAck:
    packet_type: ClassVar[PacketType] = PacketType.SUBACK

    packet_id: int
    return_codes: tuple[int, ...]  # one per filter, in SUBSCRIBE order


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_type: ClassVar[PacketType] = PacketType.UNSUBSCRIBE

    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsubAck:
    packet_type: ClassVar[PacketType] = PacketType.UNSUBACK

    packet_id: int


@dataclass(frozen=True, slots=True)
class PingReq:
    packet_type: ClassVar[PacketType] = PacketType.PINGREQ


@dataclass(frozen=True, slots=True)
class PingResp:
    packet_type: ClassVar[PacketType] = PacketType.PINGRESP


@dataclass(frozen=True, slots=True)
class Disconnect:
    packet_type: ClassVar[PacketType] = PacketType.DISCONNECT


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)
