"""Field rules shared by the encoder and the decoder.

Each check returns a description of what is wrong, or None. The caller picks the exception:
the decoder blames the peer (MqttProtocolError), the encoder blames the caller
(LocalProtocolError).
"""

from __future__ import annotations

MAX_PACKET_ID = 0xFFFF
MAX_STRING_BYTES = 0xFFFF
MAX_REMAINING_LENGTH = 268_435_455  # four varint bytes (§2.2.3)


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
