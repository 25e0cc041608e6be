"""MQTT 3.1.1 wire rules shared by the encoder and the decoder: limits, flag bits, field checks.

Each check returns a description of what is wrong, or None. The caller picks the exception:
the decoder blames the peer (MqttProtocolError), the encoder blames the caller
(LocalProtocolError).
"""

from __future__ import annotations

from .packets import ConnAckCode, PacketType, SubAckCode

MAX_PACKET_ID = 0xFFFF
MAX_STRING_BYTES = 0xFFFF
MAX_REMAINING_LENGTH = 268_435_455  # four varint bytes (§2.2.3)

# Fixed-header flag bits each type must carry (§2.2.2); PUBLISH's flags are checked separately.
REQUIRED_FLAGS = {t: 0 for t in PacketType if t is not PacketType.PUBLISH}
REQUIRED_FLAGS.update(
    {PacketType.PUBREL: 0b0010, PacketType.SUBSCRIBE: 0b0010, PacketType.UNSUBSCRIBE: 0b0010}
)
CONNACK_CODES = frozenset(ConnAckCode)  # 6-255 are reserved
SUBACK_CODES = frozenset(SubAckCode)

# CONNECT flag bits (§3.1.2.3); will QoS sits in bits 3-4
RESERVED, CLEAN_SESSION, WILL, WILL_QOS_BITS, WILL_RETAIN, PASSWORD, USERNAME = (
    0x01, 0x02, 0x04, 0x18, 0x20, 0x40, 0x80,
)  # fmt: skip


def qos_problem(qos: int, what: str = "QoS") -> str | None:
    if qos not in (0, 1, 2):
        return f"{what} {qos} is not 0, 1 or 2"
    return None


def packet_id_problem(packet_id: int | None) -> str | None:
    """Packet identifiers are 16-bit and never 0 (§2.3.1)."""
    if packet_id is None or not 1 <= packet_id <= MAX_PACKET_ID:
        return f"packet identifier {packet_id!r} is not in 1..65535"
    return None


def string_problem(value: str) -> str | None:
    """UTF-8 strings must not contain U+0000 (§1.5.3); surrogates are caught when encoding."""
    if "\x00" in value:
        return "string contains U+0000"
    return None


def topic_name_problem(topic: str) -> str | None:
    """Topic names (PUBLISH, will) are non-empty and free of wildcards (§4.7.1, §4.7.3)."""
    if not topic:
        return "topic name is empty"
    if "+" in topic or "#" in topic:
        return f"topic name {topic!r} contains a wildcard"
    return string_problem(topic)


def topic_filter_problem(topic_filter: str) -> str | None:
    """Filters are non-empty; '+' fills a whole level, '#' a whole last level (§4.7.1)."""
    if not topic_filter:
        return "topic filter is empty"
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return f"topic filter {topic_filter!r} misplaces '#'"
        if "+" in level and level != "+":
            return f"topic filter {topic_filter!r} misplaces '+'"
    return string_problem(topic_filter)
