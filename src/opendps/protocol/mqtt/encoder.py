"""Packets -> bytes, refusing anything MQTT 3.1.1 forbids.

An invalid packet is the caller's bug, so it raises LocalProtocolError before a byte is produced;
the peer never sees a malformed packet from us.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import LocalProtocolError
from .packets import (
    ConnAck,
    ConnAckCode,
    Connect,
    Disconnect,
    Packet,
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
)
from .rules import (
    CLEAN_SESSION,
    CONNACK_CODES,
    MAX_REMAINING_LENGTH,
    MAX_STRING_BYTES,
    PASSWORD,
    SUBACK_CODES,
    USERNAME,
    WILL,
    WILL_RETAIN,
    packet_id_problem,
    qos_problem,
    string_problem,
    topic_filter_problem,
    topic_name_problem,
)

_IdOnly = PubAck | PubRec | PubRel | PubComp | UnsubAck


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
    flags = CLEAN_SESSION if p.clean_session else 0
    payload = [_string(p.client_id, "client id")]
    if p.will is not None:
        _require(topic_name_problem(p.will.topic))
        _require(qos_problem(p.will.qos, "will QoS"))
        flags |= WILL | p.will.qos << 3 | (WILL_RETAIN if p.will.retain else 0)
        payload += [_string(p.will.topic, "will topic"), _binary(p.will.payload, "will payload")]
    if p.username is not None:
        flags |= USERNAME
        payload.append(_string(p.username, "username"))
    if p.password is not None:
        flags |= PASSWORD
        payload.append(_binary(p.password, "password"))
    header = _string("MQTT", "protocol name") + bytes((p.protocol_level, flags))
    return 0, header + _u16(p.keep_alive, "keep alive") + b"".join(payload)


def _encode_connack(p: ConnAck) -> tuple[int, bytes]:
    if p.return_code not in CONNACK_CODES:
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
        if code not in SUBACK_CODES:
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
    if len(body) < 128:  # a one-byte remaining length: every acknowledgement, most packets
        return bytes((first, len(body))) + body
    return bytes((first,)) + encode_remaining_length(len(body)) + body
