"""Hypothesis strategies for every MQTT 3.1.1 packet, valid by construction."""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis import strategies as st
from mqtt_helpers import split_at

from opendps.protocol.mqtt import (
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
    SubAckCode,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
    encode,
)

# conftest.py registers both; anything else in HYPOTHESIS_PROFILE belongs to another suite.
_profile_name = os.environ.get("HYPOTHESIS_PROFILE", "fast")
PROFILE = settings.get_profile(_profile_name if _profile_name in ("fast", "deep") else "fast")

# Any Unicode scalar value but U+0000 (surrogates cannot be UTF-8 encoded at all).
_chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
text = st.text(_chars, max_size=24)
_level_chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00/+#")
_level = st.text(_level_chars, max_size=6)
# Joined levels are empty only for one empty level; mapping beats filtering (no invalid examples).
topic_names = st.lists(_level, min_size=1, max_size=4).map(lambda t: "/".join(t) or "t")
topic_filters = st.builds(
    lambda levels, multi: "/".join(levels + (["#"] if multi else [])),
    st.lists(st.one_of(_level, st.just("+")), max_size=4),
    st.booleans(),
).map(lambda f: f or "+")
packet_ids = st.integers(1, 0xFFFF)
qos_levels = st.integers(0, 2)
payloads = st.binary(max_size=300)


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    client_id = draw(text)
    username = draw(st.none() | text)
    password = draw(st.none() | st.binary(max_size=40)) if username is not None else None
    will = draw(st.none() | st.builds(Will, topic_names, payloads, qos_levels, st.booleans()))
    clean_session = draw(st.booleans()) if client_id else True
    keep_alive = draw(st.integers(0, 0xFFFF))
    return Connect(client_id, username, password, keep_alive, clean_session, will)


@st.composite
def connacks(draw: st.DrawFn) -> ConnAck:
    code = draw(st.sampled_from(ConnAckCode))
    return ConnAck(draw(st.booleans()) if code == 0 else False, code)


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    qos = draw(qos_levels)
    packet_id = draw(packet_ids) if qos else None
    dup = draw(st.booleans()) if qos else False
    return Publish(draw(topic_names), draw(payloads), qos, packet_id, draw(st.booleans()), dup)


subscribes = st.builds(
    Subscribe, packet_ids, st.lists(st.tuples(topic_filters, qos_levels), min_size=1).map(tuple)
)
subacks = st.builds(
    SubAck, packet_ids, st.lists(st.sampled_from(SubAckCode), min_size=1).map(tuple)
)
unsubscribes = st.builds(Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1).map(tuple))
id_only = st.sampled_from([PubAck, PubRec, PubRel, PubComp, UnsubAck]).flatmap(
    lambda cls: st.builds(cls, packet_ids)
)
empty = st.sampled_from([PingReq(), PingResp(), Disconnect()])

packets: st.SearchStrategy[Packet] = st.one_of(
    connects(), connacks(), publishes(), subscribes, subacks, unsubscribes, id_only, empty
)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary offsets into non-empty chunks."""
    return split_at(data, draw(st.lists(st.integers(0, len(data)), max_size=12)))


@st.composite
def hostile_streams(draw: st.DrawFn) -> bytes:
    """Bytes that are often nearly valid MQTT, so the fuzzer gets past the first header."""
    kind = draw(st.sampled_from(["random", "packets", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    prefix = [draw(connects())] if draw(st.booleans()) else []
    stream = bytearray(b"".join(encode(p) for p in prefix + draw(st.lists(packets, max_size=5))))
    if kind == "mutated" and stream:
        for _ in range(draw(st.integers(1, 4))):
            index = draw(st.integers(0, len(stream) - 1))
            action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
            if action == "flip":
                stream[index] = draw(st.integers(0, 255))
            elif action == "delete":
                del stream[index]
            elif action == "insert":
                stream.insert(index, draw(st.integers(0, 255)))
            else:
                del stream[index:]
            if not stream:
                break
    return bytes(stream)
