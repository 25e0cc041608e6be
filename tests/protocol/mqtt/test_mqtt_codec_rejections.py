"""Everything MQTT 3.1.1 forbids is refused: by the decoder (peer's fault), by encode (ours)."""

import pytest
from mqtt_helpers import decode_all, split_at

from opendps.protocol.mqtt import (
    ConnAck,
    ConnAckCode,
    Connect,
    Decoder,
    LocalProtocolError,
    MqttProtocolError,
    PacketTooLargeError,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Unsubscribe,
    UnsupportedProtocolLevelError,
    Will,
    encode,
    encode_remaining_length,
)

MQTT = "00 04 4d 51 54 54"  # protocol name "MQTT"


def bad(name, wire, match, *, error=MqttProtocolError, hint=None):
    """One rejection case: hex wire bytes, the exact error type and message, the CONNACK hint."""
    return pytest.param(wire, error, match, hint, id=name)


REJECTIONS = [
    bad("non-minimal-0", "c0 80 00", "not minimally encoded"),
    bad("non-minimal-3-bytes", "30 80 80 00", "not minimally encoded"),
    bad("varint-5-bytes", "30 ff ff ff ff 7f", "longer than 4 bytes"),
    bad("subscribe-flags-0", "80 02 00 01", "SUBSCRIBE has fixed-header flags 0000"),
    bad("unsubscribe-flags-0", "a0 02 00 01", "UNSUBSCRIBE has fixed-header flags 0000"),
    bad("pubrel-flags-0", "60 02 00 01", "PUBREL has fixed-header flags 0000"),
    bad("pingreq-flags", "c1 00", "PINGREQ has fixed-header flags 0001"),
    bad("puback-flags", "42 02 00 01", "PUBACK has fixed-header flags 0010"),
    bad("type-0", "00 00", "packet type 0 is reserved"),
    bad("type-15", "f0 00", "packet type 15 is reserved"),
    bad("qos-3", "36 07 00 03 61 2f 62 00 01", "QoS 3"),
    bad("qos0-dup", "38 05 00 03 61 2f 62", "QoS 0 PUBLISH with DUP"),
    bad("publish-topic-hash", "30 05 00 03 61 2f 23", "contains a wildcard"),
    bad("publish-topic-plus", "30 05 00 03 61 2f 2b", "contains a wildcard"),
    bad("publish-topic-empty", "30 02 00 00", "topic name is empty"),
    bad("invalid-utf8", "30 03 00 01 ff", "topic name is not valid UTF-8"),
    bad("utf8-surrogate", "30 05 00 03 ed a0 80", "topic name is not valid UTF-8"),
    bad("utf8-nul", "30 05 00 03 61 00 62", "contains U\\+0000"),
    bad("qos1-without-packet-id", "32 05 00 03 61 2f 62", "ends in the middle of a field"),
    bad("publish-packet-id-0", "32 07 00 03 61 2f 62 00 00", "packet identifier 0"),
    bad("puback-packet-id-0", "40 02 00 00", "packet identifier 0"),
    bad("puback-trailing", "40 03 00 01 00", "1 unexpected trailing bytes"),
    bad("pingreq-trailing", "c0 01 00", "PINGREQ has 1 unexpected trailing"),
    bad("subscribe-empty", "82 02 00 01", "SUBSCRIBE has no topic filter"),
    bad("subscribe-qos-3", "82 06 00 01 00 01 23 03", "requested QoS 3"),
    bad("subscribe-qos-reserved-bits", "82 06 00 01 00 01 23 04", "reserved bits"),
    bad("subscribe-hash-not-last", "82 07 00 01 00 02 23 2f 00", "misplaces '#'"),
    bad("subscribe-plus-partial-level", "82 07 00 01 00 02 61 2b 00", "misplaces '\\+'"),
    bad("subscribe-empty-filter", "82 05 00 01 00 00 00", "topic filter is empty"),
    bad("unsubscribe-empty", "a2 02 00 01", "UNSUBSCRIBE has no topic filter"),
    bad("suback-empty", "90 02 00 01", "SUBACK has no return code"),
    bad("suback-bad-code", "90 03 00 01 03", "SUBACK return code 3"),
    bad("connack-reserved-flags", "20 02 02 00", "CONNACK reserved flags"),
    bad("connack-reserved-code", "20 02 00 06", "CONNACK return code 6 is reserved"),
    bad("connack-refused-with-session", "20 02 01 05", "refusing CONNACK claims a session"),
    bad("connack-trailing", "20 03 00 00 00", "CONNACK has 1 unexpected trailing"),
    # CONNECT: only the protocol level and the client id earn a CONNACK before the close
    bad(
        "connect-level-3",
        f"10 0f {MQTT} 03 02 00 3c 00 03 61 62 63",
        "'MQTT' level 3",
        error=UnsupportedProtocolLevelError,
        hint=ConnAckCode.UNACCEPTABLE_PROTOCOL_VERSION,
    ),
    bad(
        "connect-level-5-with-properties",
        f"10 10 {MQTT} 05 02 00 3c 00 00 03 61 62 63",
        "'MQTT' level 5",
        error=UnsupportedProtocolLevelError,
        hint=ConnAckCode.UNACCEPTABLE_PROTOCOL_VERSION,
    ),
    bad(
        "connect-mqtt-3.1",
        "10 11 00 06 4d 51 49 73 64 70 03 02 00 3c 00 03 61 62 63",
        "'MQIsdp' level 3",
        error=UnsupportedProtocolLevelError,
        hint=ConnAckCode.UNACCEPTABLE_PROTOCOL_VERSION,
    ),
    bad(
        "connect-empty-id-persistent",
        f"10 0c {MQTT} 04 00 00 3c 00 00",
        "empty client id requires a clean session",
        hint=ConnAckCode.IDENTIFIER_REJECTED,
    ),
    bad(
        "connect-bad-name",
        "10 0f 00 04 4d 51 54 58 04 02 00 3c 00 03 61 62 63",
        "unknown protocol name 'MQTX'",
    ),
    bad(
        "connect-reserved-flag",
        f"10 0f {MQTT} 04 03 00 3c 00 03 61 62 63",
        "reserved flag is set",
    ),
    bad(
        "connect-password-no-user",
        f"10 12 {MQTT} 04 42 00 3c 00 03 61 62 63 00 01 70",
        "password without a username",
    ),
    bad(
        "connect-will-qos-without-will",
        f"10 0f {MQTT} 04 0a 00 3c 00 03 61 62 63",
        "will QoS or retain without a will",
    ),
    bad(
        "connect-will-retain-without-will",
        f"10 0f {MQTT} 04 22 00 3c 00 03 61 62 63",
        "will QoS or retain without a will",
    ),
    bad(
        "connect-will-qos-3",
        f"10 15 {MQTT} 04 1e 00 3c 00 03 61 62 63 00 01 77 00 01 78",
        "will QoS 3",
    ),
    bad(
        "connect-will-topic-wildcard",
        f"10 15 {MQTT} 04 06 00 3c 00 03 61 62 63 00 01 23 00 01 78",
        "contains a wildcard",
    ),
    bad(
        "connect-missing-username",
        f"10 0f {MQTT} 04 82 00 3c 00 03 61 62 63",
        "ends in the middle of a field",
    ),
    bad(
        "connect-trailing",
        f"10 10 {MQTT} 04 02 00 3c 00 03 61 62 63 00",
        "CONNECT has 1 unexpected trailing",
    ),
    bad(
        "connect-client-id-utf8",
        f"10 0f {MQTT} 04 02 00 3c 00 03 61 c3 28",
        "client id is not valid UTF-8",
    ),
    bad(
        "connect-username-utf8",
        f"10 10 {MQTT} 04 82 00 3c 00 00 00 02 ff fe",
        "username is not valid UTF-8",
    ),
    bad(
        "connect-header-flags",
        f"13 0f {MQTT} 04 02 00 3c 00 03 61 62 63",
        "CONNECT has fixed-header flags 0011",
    ),
]


@pytest.mark.parametrize(("wire", "error", "match", "hint"), REJECTIONS)
def test_decoder_rejects(wire, error, match, hint):
    decoder = Decoder()
    decoder.feed(bytes.fromhex(wire))
    with pytest.raises(MqttProtocolError, match=match) as info:
        decoder.next_packet()
    assert type(info.value) is error
    assert info.value.connack_hint == hint


@pytest.mark.parametrize(("wire", "error", "match", "hint"), REJECTIONS)
def test_rejection_is_the_same_at_every_split(wire, error, match, hint):
    data = bytes.fromhex(wire)
    for cut in range(len(data) + 1):
        decoder = Decoder()
        with pytest.raises(error, match=match):
            for chunk in split_at(data, [cut]):
                decoder.feed(chunk)
                decode_all(decoder)


def test_decoder_stays_dead_after_an_error():
    decoder = Decoder()
    decoder.feed(bytes.fromhex("36"))
    with pytest.raises(MqttProtocolError, match="QoS 3") as first:
        decoder.next_packet()
    decoder.feed(bytes.fromhex("c0 00"))
    with pytest.raises(MqttProtocolError) as again:
        decoder.next_packet()
    assert again.value is first.value


def test_errors_are_detected_from_the_first_byte():
    decoder = Decoder()
    decoder.feed(b"\x36")  # PUBLISH QoS 3, nothing else yet
    with pytest.raises(MqttProtocolError, match="QoS 3"):
        decoder.next_packet()


def test_oversized_packet_rejected_from_its_header_alone():
    header = b"\x30" + encode_remaining_length(10_000_000)
    assert header == bytes.fromhex("30 80 ad e2 04")
    decoder = Decoder(max_packet_size=1024)
    decoder.feed(header)
    with pytest.raises(PacketTooLargeError, match="10000005 bytes exceeds the limit of 1024") as e:
        decoder.next_packet()
    assert (e.value.size, e.value.limit, e.value.connack_hint) == (10_000_005, 1024, None)


def test_default_limit_rejects_10_mb_from_the_header():
    decoder = Decoder()
    decoder.feed(bytes.fromhex("30 80 ad e2 04"))
    with pytest.raises(PacketTooLargeError):
        decoder.next_packet()


def test_size_limit_counts_the_whole_packet():
    packet = encode(Publish("t", bytes(10), 0, None))  # 2 + 3 + 10 = 15 bytes
    assert len(packet) == 15
    at_limit = Decoder(max_packet_size=15)
    at_limit.feed(packet)
    assert len(decode_all(at_limit)) == 1
    over = Decoder(max_packet_size=14)
    over.feed(packet[:2])  # the fixed header is enough to know
    with pytest.raises(PacketTooLargeError, match="15 bytes exceeds the limit of 14"):
        over.next_packet()


@pytest.mark.parametrize(
    ("packet", "match"),
    [
        (Publish("a/#", b"", 0, None), "contains a wildcard"),
        (Publish("", b"", 0, None), "topic name is empty"),
        (Publish("a", b"", 3, 1), "QoS 3"),
        (Publish("a", b"", 1, None), "packet identifier None"),
        (Publish("a", b"", 1, 0), "packet identifier 0"),
        (Publish("a", b"", 1, 65536), "packet identifier 65536"),
        (Publish("a", b"", 0, 5), "QoS 0 PUBLISH has no packet identifier"),
        (Publish("a", b"", 0, None, dup=True), "must not set DUP"),
        (Publish("a\x00", b"", 0, None), "U\\+0000"),
        (Publish("a\ud800", b"", 0, None), "lone surrogate"),
        (Publish("a" * 65536, b"", 0, None), "longer than 65535 bytes"),
        (PubAck(0), "packet identifier 0"),
        (Subscribe(1, ()), "at least one topic filter"),
        (Subscribe(1, (("a/#/b", 0),)), "misplaces '#'"),
        (Subscribe(1, (("a", 3),)), "requested QoS 3"),
        (Unsubscribe(1, ()), "at least one topic filter"),
        (Unsubscribe(1, ("a+",)), "misplaces '\\+'"),
        (SubAck(1, ()), "one return code per topic filter"),
        (SubAck(1, (3,)), "SUBACK return code 3"),
        (ConnAck(False, 6), "CONNACK return code 6 is reserved"),
        (ConnAck(True, 5), "must not claim a session"),
        (Connect("", clean_session=False), "empty client id requires clean_session"),
        (Connect("a", None, b"pw"), "password requires a username"),
        (Connect("a", keep_alive=65536), "keep alive 65536"),
        (Connect("a", will=Will("w/+", b"")), "contains a wildcard"),
        (Connect("a", will=Will("w", b"", 3)), "will QoS 3"),
        (Connect("a", protocol_level=256), "protocol level 256"),
    ],
)
def test_encode_refuses_what_the_spec_forbids(packet, match):
    with pytest.raises(LocalProtocolError, match=match):
        encode(packet)


def test_encode_rejects_non_packets():
    with pytest.raises(TypeError, match="not an MQTT packet"):
        encode("PINGREQ")  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [-1, 268_435_456])
def test_remaining_length_out_of_range(length):
    with pytest.raises(LocalProtocolError, match="remaining length"):
        encode_remaining_length(length)
