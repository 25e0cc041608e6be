"""Bytes <-> packets for MQTT 3.1.1 (protocol level 4), strictly.

``encode`` refuses to produce anything the spec forbids (LocalProtocolError); ``Decoder`` turns a
byte stream into packets and raises MqttProtocolError on the first violation. Neither knows about
connection state: whether a CONNACK may arrive now is the connection's business.
"""

from __future__ import annotations

from collections.abc import Callable

from .buffer import Buffer
from .errors import (
    LocalProtocolError,
    MqttProtocolError,
    PacketTooLargeError,
    UnsupportedProtocolLevelError,
)
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
    SubAckCode,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
)
from .rules import (
    MAX_REMAINING_LENGTH,
    MAX_STRING_BYTES,
    packet_id_problem,
    qos_problem,
    string_problem,
    topic_filter_problem,
    topic_name_problem,
)

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "Decoder",
    "LocalProtocolError",
    "MqttProtocolError",
    "PacketTooLargeError",
    "UnsupportedProtocolLevelError",
    "encode",
    "encode_remaining_length",
]

# IoT Hub caps messages at 256 KiB; leave room for the longest possible topic and the headers.
DEFAULT_MAX_PACKET_SIZE = 256 * 1024 + 64 * 1024

# Fixed-header flag bits each type must carry (§2.2.2); PUBLISH's flags are checked separately.
_REQUIRED_FLAGS = {t: 0 for t in PacketType if t is not PacketType.PUBLISH}
_REQUIRED_FLAGS.update(
    {PacketType.PUBREL: 0b0010, PacketType.SUBSCRIBE: 0b0010, PacketType.UNSUBSCRIBE: 0b0010}
)
_SUBACK_CODES = frozenset(SubAckCode)
_CONNACK_CODES = frozenset(ConnAckCode)
_IdOnly = PubAck | PubRec | PubRel | PubComp | UnsubAck

# CONNECT flag bits (§3.1.2.3)
_RESERVED, _CLEAN, _WILL, _WILL_RETAIN, _PASSWORD, _USERNAME = 0x01, 0x02, 0x04, 0x20, 0x40, 0x80


# ---------------------------------------------------------------------------- encoding


def _require(problem: str | None) -> None:
    if problem is not None:
        raise LocalProtocolError(problem)


def encode_remaining_length(length: int) -> bytes:
    """The minimal 1-4 byte variable-length encoding of §2.2.3."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise LocalProtocolError(f"remaining length {length} is not in 0..{MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        length, byte = divmod(length, 128)
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"{what} {value} is not in 0..65535")
    return value.to_bytes(2, "big")


def _binary(raw: bytes, what: str) -> bytes:
    if len(raw) > MAX_STRING_BYTES:
        raise LocalProtocolError(f"{what} is longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def _string(value: str, what: str) -> bytes:
    problem = string_problem(value)
    if problem is not None:
        raise LocalProtocolError(f"{what}: {problem}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} contains a lone surrogate") from None
    return _binary(raw, what)


def _packet_id(packet_id: int | None) -> bytes:
    _require(packet_id_problem(packet_id))
    assert packet_id is not None
    return packet_id.to_bytes(2, "big")


def _encode_connect(p: Connect) -> tuple[int, bytes]:
    if not 0 <= p.protocol_level <= 0xFF:
        raise LocalProtocolError(f"protocol level {p.protocol_level} is not a byte")
    if not p.client_id and not p.clean_session:
        raise LocalProtocolError("an empty client id requires clean_session (§3.1.3-7)")
    if p.password is not None and p.username is None:
        raise LocalProtocolError("a password requires a username (§3.1.2-22)")
    flags = _CLEAN if p.clean_session else 0
    payload = [_string(p.client_id, "client id")]
    if p.will is not None:
        _require(topic_name_problem(p.will.topic))
        _require(qos_problem(p.will.qos, "will QoS"))
        flags |= _WILL | p.will.qos << 3 | (_WILL_RETAIN if p.will.retain else 0)
        payload += [_string(p.will.topic, "will topic"), _binary(p.will.payload, "will payload")]
    if p.username is not None:
        flags |= _USERNAME
        payload.append(_string(p.username, "username"))
    if p.password is not None:
        flags |= _PASSWORD
        payload.append(_binary(p.password, "password"))
    header = _string("MQTT", "protocol name") + bytes((p.protocol_level, flags))
    return 0, header + _u16(p.keep_alive, "keep alive") + b"".join(payload)


def _encode_connack(p: ConnAck) -> tuple[int, bytes]:
    if p.return_code not in _CONNACK_CODES:
        raise LocalProtocolError(f"CONNACK return code {p.return_code} is reserved")
    if p.session_present and p.return_code != ConnAckCode.ACCEPTED:
        raise LocalProtocolError("a refusing CONNACK must not claim a session (§3.2.2-4)")
    return 0, bytes((1 if p.session_present else 0, p.return_code))


def _encode_publish(p: Publish) -> tuple[int, bytes]:
    _require(qos_problem(p.qos))
    _require(topic_name_problem(p.topic))
    if p.qos == 0:
        if p.packet_id is not None:
            raise LocalProtocolError("a QoS 0 PUBLISH has no packet identifier")
        if p.dup:
            raise LocalProtocolError("a QoS 0 PUBLISH must not set DUP (§3.3.1-2)")
        packet_id = b""
    else:
        packet_id = _packet_id(p.packet_id)
    flags = (8 if p.dup else 0) | p.qos << 1 | (1 if p.retain else 0)
    return flags, _string(p.topic, "topic name") + packet_id + p.payload


def _encode_id_only(flags: int) -> Callable[[_IdOnly], tuple[int, bytes]]:
    return lambda p: (flags, _packet_id(p.packet_id))


def _encode_subscribe(p: Subscribe) -> tuple[int, bytes]:
    if not p.topics:
        raise LocalProtocolError("SUBSCRIBE needs at least one topic filter (§3.8.3-3)")
    parts = [_packet_id(p.packet_id)]
    for topic_filter, qos in p.topics:
        _require(topic_filter_problem(topic_filter))
        _require(qos_problem(qos, "requested QoS"))
        parts += [_string(topic_filter, "topic filter"), bytes((qos,))]
    return 0b0010, b"".join(parts)


def _encode_suback(p: SubAck) -> tuple[int, bytes]:
    if not p.return_codes:
        raise LocalProtocolError("SUBACK needs one return code per topic filter")
    for code in p.return_codes:
        if code not in _SUBACK_CODES:
            raise LocalProtocolError(f"SUBACK return code {code} is not 0, 1, 2 or 0x80")
    return 0, _packet_id(p.packet_id) + bytes(p.return_codes)


def _encode_unsubscribe(p: Unsubscribe) -> tuple[int, bytes]:
    if not p.topics:
        raise LocalProtocolError("UNSUBSCRIBE needs at least one topic filter (§3.10.3-2)")
    parts = [_packet_id(p.packet_id)]
    for topic_filter in p.topics:
        _require(topic_filter_problem(topic_filter))
        parts.append(_string(topic_filter, "topic filter"))
    return 0b0010, b"".join(parts)


def _encode_empty(_: PingReq | PingResp | Disconnect) -> tuple[int, bytes]:
    return 0, b""


_ENCODERS: dict[type, Callable[..., tuple[int, bytes]]] = {
    Connect: _encode_connect,
    ConnAck: _encode_connack,
    Publish: _encode_publish,
    PubAck: _encode_id_only(0),
    PubRec: _encode_id_only(0),
    PubRel: _encode_id_only(0b0010),
    PubComp: _encode_id_only(0),
    Subscribe: _encode_subscribe,
    SubAck: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    UnsubAck: _encode_id_only(0),
    PingReq: _encode_empty,
    PingResp: _encode_empty,
    Disconnect: _encode_empty,
}


def encode(packet: Packet) -> bytes:
    """The wire bytes of ``packet``; LocalProtocolError if MQTT 3.1.1 forbids it."""
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise TypeError(f"not an MQTT packet: {packet!r}")
    flags, body = encoder(packet)
    first = packet.packet_type << 4 | flags
    return bytes((first,)) + encode_remaining_length(len(body)) + body


# ---------------------------------------------------------------------------- decoding


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
    if connect_flags & _RESERVED:
        raise MqttProtocolError("CONNECT reserved flag is set (§3.1.2-3)")
    if not connect_flags & _WILL and connect_flags & (_WILL_RETAIN | 0x18):
        raise MqttProtocolError("CONNECT sets will QoS or retain without a will (§3.1.2-11)")
    _check(qos_problem(will_qos, "will QoS"))
    if connect_flags & _PASSWORD and not connect_flags & _USERNAME:
        raise MqttProtocolError("CONNECT has a password without a username (§3.1.2-22)")
    keep_alive = r.u16()
    client_id = r.string("client id")
    will = None
    if connect_flags & _WILL:
        topic = r.string("will topic")
        _check(topic_name_problem(topic))
        will = Will(topic, r.binary(), will_qos, bool(connect_flags & _WILL_RETAIN))
    username = r.string("username") if connect_flags & _USERNAME else None
    password = r.binary() if connect_flags & _PASSWORD else None
    r.finish()
    clean_session = bool(connect_flags & _CLEAN)
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
    if return_code not in _CONNACK_CODES:
        raise MqttProtocolError(f"CONNACK return code {return_code} is reserved")
    if ack_flags and return_code != ConnAckCode.ACCEPTED:
        raise MqttProtocolError("a refusing CONNACK claims a session (§3.2.2-4)")
    return ConnAck(bool(ack_flags), ConnAckCode(return_code))


def _decode_publish(flags: int, r: _Reader) -> Publish:
    qos = flags >> 1 & 3
    topic = r.string("topic name")
    _check(topic_name_problem(topic))
    packet_id = r.packet_id() if qos else None
    return Publish(topic, r.rest(), qos, packet_id, retain=bool(flags & 1), dup=bool(flags & 8))


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
        if code not in _SUBACK_CODES:
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
    PacketType.PUBLISH: _decode_publish,
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


def _packet_type(first_byte: int) -> tuple[PacketType, int]:
    """Type and flags of a fixed header, rejected from its first byte when it can be."""
    code, flags = first_byte >> 4, first_byte & 0x0F
    if code in (0, 15):
        raise MqttProtocolError(f"packet type {code} is reserved")
    packet_type = PacketType(code)
    if packet_type is PacketType.PUBLISH:
        if flags & 0b0110 == 0b0110:
            raise MqttProtocolError("PUBLISH with QoS 3 (§3.3.1-4)")
        if flags & 0b1000 and not flags & 0b0110:
            raise MqttProtocolError("QoS 0 PUBLISH with DUP set (§3.3.1-2)")
    elif flags != _REQUIRED_FLAGS[packet_type]:
        raise MqttProtocolError(
            f"{packet_type.name} has fixed-header flags {flags:04b}, "
            f"must be {_REQUIRED_FLAGS[packet_type]:04b} (§2.2.2)"
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
        return _DECODERS[packet_type](flags, _Reader(body, packet_type.name))
