"""Bytes -> packets, incrementally and strictly.

The first violation raises MqttProtocolError, as early as the bytes allow (type and flags on the
first byte, the size limit once the remaining length is known), so garbage and oversized packets
are never buffered.
"""

from __future__ import annotations

from collections.abc import Callable

from .buffer import Buffer
from .errors import MqttProtocolError, PacketTooLargeError, UnsupportedProtocolLevelError
from .packets import (
    ConnAck,
    ConnAckCode,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
)
from .rules import (
    CLEAN_SESSION,
    CONNACK_CODES,
    PASSWORD,
    REQUIRED_FLAGS,
    RESERVED,
    SUBACK_CODES,
    USERNAME,
    WILL,
    WILL_QOS_BITS,
    WILL_RETAIN,
    packet_id_problem,
    qos_problem,
    string_problem,
    topic_filter_problem,
    topic_name_problem,
)

# IoT Hub caps messages at 256 KiB; leave room for the longest possible topic and the headers.
DEFAULT_MAX_PACKET_SIZE = 256 * 1024 + 64 * 1024

_IdOnly = PubAck | PubRec | PubRel | PubComp | UnsubAck


def _check(problem: str | None) -> None:
    if problem is not None:
        raise MqttProtocolError(problem)


class _Reader:
    """Sequential field reads over one packet's body; running short is a malformed packet."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise MqttProtocolError(f"{self._what} ends in the middle of a field")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def binary(self) -> bytes:
        return self._take(self.u16())

    def string(self, what: str) -> str:
        try:
            value = self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise MqttProtocolError(f"{what} is not valid UTF-8") from None
        problem = string_problem(value)
        if problem is not None:
            raise MqttProtocolError(f"{what}: {problem}")
        return value

    def packet_id(self) -> int:
        packet_id = self.u16()
        _check(packet_id_problem(packet_id))
        return packet_id

    def rest(self) -> bytes:
        return self._take(len(self._data) - self._pos)

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def finish(self) -> None:
        if not self.at_end():
            extra = len(self._data) - self._pos
            raise MqttProtocolError(f"{self._what} has {extra} unexpected trailing bytes")


def _decode_connect(flags: int, r: _Reader) -> Connect:
    protocol_name = r.string("protocol name")
    level = r.u8()
    if protocol_name not in ("MQTT", "MQIsdp"):
        raise MqttProtocolError(f"unknown protocol name {protocol_name!r}")
    if (protocol_name, level) != ("MQTT", 4):
        raise UnsupportedProtocolLevelError(protocol_name, level)
    connect_flags = r.u8()
    will_qos = connect_flags >> 3 & 3
    if connect_flags & RESERVED:
        raise MqttProtocolError("CONNECT reserved flag is set (§3.1.2-3)")
    if not connect_flags & WILL and connect_flags & (WILL_RETAIN | WILL_QOS_BITS):
        raise MqttProtocolError("CONNECT sets will QoS or retain without a will (§3.1.2-11)")
    _check(qos_problem(will_qos, "will QoS"))
    if connect_flags & PASSWORD and not connect_flags & USERNAME:
        raise MqttProtocolError("CONNECT has a password without a username (§3.1.2-22)")
    keep_alive = r.u16()
    client_id = r.string("client id")
    will = None
    if connect_flags & WILL:
        topic = r.string("will topic")
        _check(topic_name_problem(topic))
        will = Will(topic, r.binary(), will_qos, bool(connect_flags & WILL_RETAIN))
    username = r.string("username") if connect_flags & USERNAME else None
    password = r.binary() if connect_flags & PASSWORD else None
    r.finish()
    clean_session = bool(connect_flags & CLEAN_SESSION)
    if not client_id and not clean_session:
        raise MqttProtocolError(
            "an empty client id requires a clean session (§3.1.3-8)",
            connack_hint=ConnAckCode.IDENTIFIER_REJECTED,
        )
    return Connect(client_id, username, password, keep_alive, clean_session, will)


def _decode_connack(flags: int, r: _Reader) -> ConnAck:
    ack_flags, return_code = r.u8(), r.u8()
    r.finish()
    if ack_flags & 0xFE:
        raise MqttProtocolError("CONNACK reserved flags are set")
    if return_code not in CONNACK_CODES:
        raise MqttProtocolError(f"CONNACK return code {return_code} is reserved")
    if ack_flags and return_code != ConnAckCode.ACCEPTED:
        raise MqttProtocolError("a refusing CONNACK claims a session (§3.2.2-4)")
    return ConnAck(bool(ack_flags), ConnAckCode(return_code))


def _decode_publish(flags: int, body: bytes) -> Publish:
    """Straight from the bytes rather than through ``_Reader``: a telemetry message is one
    PUBLISH, and the reader's calls were half its decoding. The checks are the reader's."""
    qos = flags >> 1 & 3
    end = 2 + (body[0] << 8 | body[1]) if len(body) >= 2 else 2
    if end + (2 if qos else 0) > len(body):
        raise MqttProtocolError("PUBLISH ends in the middle of a field")
    try:
        topic = body[2:end].decode("utf-8")
    except UnicodeDecodeError:
        raise MqttProtocolError("topic name is not valid UTF-8") from None
    if "\x00" in topic:
        raise MqttProtocolError(f"topic name: {string_problem(topic)}")
    _check(topic_name_problem(topic))
    packet_id = None
    if qos:
        packet_id = body[end] << 8 | body[end + 1]
        _check(packet_id_problem(packet_id))
        end += 2
    return Publish(topic, body[end:], qos, packet_id, retain=bool(flags & 1), dup=bool(flags & 8))


def _decode_id_only(cls: type[_IdOnly]) -> Callable[[int, _Reader], Packet]:
    def decode(flags: int, r: _Reader) -> Packet:
        packet_id = r.packet_id()
        r.finish()
        return cls(packet_id)

    return decode


def _decode_subscribe(flags: int, r: _Reader) -> Subscribe:
    packet_id = r.packet_id()
    topics = []
    while not r.at_end():
        topic_filter = r.string("topic filter")
        _check(topic_filter_problem(topic_filter))
        qos = r.u8()
        if qos & 0xFC:
            raise MqttProtocolError("SUBSCRIBE requested-QoS reserved bits are set (§3.8.3-4)")
        _check(qos_problem(qos, "requested QoS"))
        topics.append((topic_filter, qos))
    if not topics:
        raise MqttProtocolError("SUBSCRIBE has no topic filter (§3.8.3-3)")
    return Subscribe(packet_id, tuple(topics))


def _decode_suback(flags: int, r: _Reader) -> SubAck:
    packet_id = r.packet_id()
    codes = tuple(r.rest())
    if not codes:
        raise MqttProtocolError("SUBACK has no return code")
    for code in codes:
        if code not in SUBACK_CODES:
            raise MqttProtocolError(f"SUBACK return code {code} is not 0, 1, 2 or 0x80")
    return SubAck(packet_id, codes)


def _decode_unsubscribe(flags: int, r: _Reader) -> Unsubscribe:
    packet_id = r.packet_id()
    topics = []
    while not r.at_end():
        topic_filter = r.string("topic filter")
        _check(topic_filter_problem(topic_filter))
        topics.append(topic_filter)
    if not topics:
        raise MqttProtocolError("UNSUBSCRIBE has no topic filter (§3.10.3-2)")
    return Unsubscribe(packet_id, tuple(topics))


def _decode_empty(cls: type[PingReq | PingResp | Disconnect]) -> Callable[[int, _Reader], Packet]:
    def decode(flags: int, r: _Reader) -> Packet:
        r.finish()
        return cls()

    return decode


_DECODERS: dict[PacketType, Callable[[int, _Reader], Packet]] = {
    PacketType.CONNECT: _decode_connect,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBACK: _decode_id_only(PubAck),
    PacketType.PUBREC: _decode_id_only(PubRec),
    PacketType.PUBREL: _decode_id_only(PubRel),
    PacketType.PUBCOMP: _decode_id_only(PubComp),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: _decode_id_only(UnsubAck),
    PacketType.PINGREQ: _decode_empty(PingReq),
    PacketType.PINGRESP: _decode_empty(PingResp),
    PacketType.DISCONNECT: _decode_empty(Disconnect),
}


# by type code, so the hot path indexes a tuple instead of calling the enum (0, 15: reserved)
_TYPES = tuple(PacketType(c) if 0 < c < 15 else None for c in range(16))
_FLAGS = tuple(REQUIRED_FLAGS.get(t) if t is not None else None for t in _TYPES)
_DECODER_OF = tuple(_DECODERS.get(t) if t is not None else None for t in _TYPES)


def _packet_type(first_byte: int) -> tuple[PacketType, int]:
    """Type and flags of a fixed header, rejected from its first byte when it can be."""
    code, flags = first_byte >> 4, first_byte & 0x0F
    packet_type = _TYPES[code]
    if packet_type is None:
        raise MqttProtocolError(f"packet type {code} is reserved")
    if packet_type is PacketType.PUBLISH:
        if flags & 0b0110 == 0b0110:
            raise MqttProtocolError("PUBLISH with QoS 3 (§3.3.1-4)")
        if flags & 0b1000 and not flags & 0b0110:
            raise MqttProtocolError("QoS 0 PUBLISH with DUP set (§3.3.1-2)")
    elif flags != _FLAGS[code]:
        raise MqttProtocolError(
            f"{packet_type.name} has fixed-header flags {flags:04b}, "
            f"must be {REQUIRED_FLAGS[packet_type]:04b} (§2.2.2)"
        )
    return packet_type, flags


class Decoder:
    """Incremental decoder: ``feed`` bytes in any chunking, pull packets with ``next_packet``.

    Each packet is checked as early as its bytes allow: the type and flags on the first byte,
    the size limit as soon as the remaining length is complete. After an error the decoder
    is dead and keeps raising the same error.
    """

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        if max_packet_size < 2:
            raise ValueError("max_packet_size must allow at least a 2-byte packet")
        self.max_packet_size = max_packet_size
        self._buffer = Buffer()
        self._error: MqttProtocolError | None = None

    def feed(self, data: bytes) -> None:
        if self._error is None:
            self._buffer.feed(data)

    @property
    def buffered(self) -> int:
        """Bytes received that are not part of a returned packet (a partial packet at EOF)."""
        return len(self._buffer)

    def next_packet(self) -> Packet | None:
        """The next complete packet, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        try:
            packet = self._next_packet()
        except MqttProtocolError as exc:
            self._error = exc
            raise
        if packet is None:
            self._buffer.rollback()
        return packet

    def _next_packet(self) -> Packet | None:
        buffer = self._buffer
        first = buffer.read_byte()
        if first is None:
            return None
        packet_type, flags = _packet_type(first)
        remaining, multiplier = 0, 1
        for length_bytes in range(1, 5):
            byte = buffer.read_byte()
            if byte is None:
                return None
            remaining += (byte & 0x7F) * multiplier
            if not byte & 0x80:
                if byte == 0 and length_bytes > 1:
                    raise MqttProtocolError("remaining length is not minimally encoded (§2.2.3)")
                break
            multiplier *= 128
        else:
            raise MqttProtocolError("remaining length is longer than 4 bytes (§2.2.3)")
        size = 1 + length_bytes + remaining
        if size > self.max_packet_size:
            raise PacketTooLargeError(size, self.max_packet_size)
        body = buffer.read_exactly(remaining)
        if body is None:
            return None
        buffer.commit()
        if packet_type is PacketType.PUBLISH:
            return _decode_publish(flags, body)
        return _DECODER_OF[first >> 4](flags, _Reader(body, packet_type.name))  # type: ignore[misc]
