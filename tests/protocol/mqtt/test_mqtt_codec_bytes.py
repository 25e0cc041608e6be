"""Exact wire bytes, written by hand from the MQTT 3.1.1 spec, both ways."""

import pytest
from mqtt_helpers import decode_all

from opendps.protocol.mqtt import (
    ConnAck,
    ConnAckCode,
    Connect,
    Decoder,
    Disconnect,
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
    encode,
    encode_remaining_length,
)

BYTE_TABLE = [
    pytest.param(
        Connect("abc", None, None, 60, True, None),
        "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 61 62 63",
        id="connect-minimal",
    ),
    pytest.param(
        Connect("c", "u", b"p", 10, True, Will("w", b"bye", 1, True)),
        "10 1b 00 04 4d 51 54 54 04 ee 00 0a"
        " 00 01 63  00 01 77  00 03 62 79 65  00 01 75  00 01 70",
        id="connect-will-user-password",
    ),
    pytest.param(
        Connect("", "u", None, 0, True, None),
        "10 0f 00 04 4d 51 54 54 04 82 00 00 00 00 00 01 75",
        id="connect-empty-client-id-username-only",
    ),
    pytest.param(
        Connect("d", None, None, 300, False, Will("w", b"", 2, False)),
        "10 12 00 04 4d 51 54 54 04 14 01 2c 00 01 64 00 01 77 00 00",
        id="connect-persistent-will-qos2",
    ),
    pytest.param(ConnAck(False, ConnAckCode.ACCEPTED), "20 02 00 00", id="connack"),
    pytest.param(ConnAck(True, 0), "20 02 01 00", id="connack-session-present"),
    pytest.param(ConnAck(False, ConnAckCode.NOT_AUTHORIZED), "20 02 00 05", id="connack-refused"),
    pytest.param(Publish("a/b", b"hi", 0, None), "30 07 00 03 61 2f 62 68 69", id="publish-qos0"),
    pytest.param(
        Publish("a/b", b"hi", 1, 10, retain=True, dup=True),
        "3b 09 00 03 61 2f 62 00 0a 68 69",
        id="publish-qos1-dup-retain",
    ),
    pytest.param(Publish("a/b", b"", 2, 1), "34 07 00 03 61 2f 62 00 01", id="publish-qos2-empty"),
    pytest.param(
        Publish("$dps/registrations/res/200/?$rid=1", b"{}", 0, None),
        "30 26 00 22" + b"$dps/registrations/res/200/?$rid=1".hex() + "7b 7d",
        id="publish-dps-topic",
    ),
    pytest.param(PubAck(10), "40 02 00 0a", id="puback"),
    pytest.param(PubRec(10), "50 02 00 0a", id="pubrec"),
    pytest.param(PubRel(10), "62 02 00 0a", id="pubrel"),
    pytest.param(PubComp(65535), "70 02 ff ff", id="pubcomp"),
    pytest.param(
        Subscribe(1, (("a/#", 1), ("+/b", 0))),
        "82 0e 00 01 00 03 61 2f 23 01 00 03 2b 2f 62 00",
        id="subscribe",
    ),
    pytest.param(SubAck(1, (1, 0x80)), "90 04 00 01 01 80", id="suback"),
    pytest.param(Unsubscribe(2, ("a/#",)), "a2 07 00 02 00 03 61 2f 23", id="unsubscribe"),
    pytest.param(UnsubAck(2), "b0 02 00 02", id="unsuback"),
    pytest.param(PingReq(), "c0 00", id="pingreq"),
    pytest.param(PingResp(), "d0 00", id="pingresp"),
    pytest.param(Disconnect(), "e0 00", id="disconnect"),
]


@pytest.mark.parametrize(("packet", "wire"), BYTE_TABLE)
def test_encode_exact_bytes(packet, wire):
    assert encode(packet) == bytes.fromhex(wire)


@pytest.mark.parametrize(("packet", "wire"), BYTE_TABLE)
def test_decode_exact_bytes(packet, wire):
    decoder = Decoder()
    decoder.feed(bytes.fromhex(wire))
    assert decode_all(decoder) == [packet]
    assert decoder.buffered == 0


def test_decoded_connack_code_is_the_enum():
    decoder = Decoder()
    decoder.feed(bytes.fromhex("20 02 00 04"))
    (packet,) = decode_all(decoder)
    assert packet.return_code is ConnAckCode.BAD_USERNAME_OR_PASSWORD


@pytest.mark.parametrize(
    ("length", "wire"),
    [  # the boundary table of §2.2.3
        (0, "00"),
        (127, "7f"),
        (128, "80 01"),
        (16_383, "ff 7f"),
        (16_384, "80 80 01"),
        (2_097_151, "ff ff 7f"),
        (2_097_152, "80 80 80 01"),
        (268_435_455, "ff ff ff 7f"),
    ],
)
def test_remaining_length_table(length, wire):
    assert encode_remaining_length(length) == bytes.fromhex(wire)


@pytest.mark.parametrize("payload_size", [120, 121, 122, 16_375, 16_376, 200_000])
def test_remaining_length_boundaries_round_trip(payload_size):
    # topic "t" costs 3 bytes, the packet id 2: remaining length crosses 127/128 and 16383/16384
    packet = Publish("t", bytes(payload_size), 1, 7)
    wire = encode(packet)
    decoder = Decoder()
    decoder.feed(wire)
    assert decode_all(decoder) == [packet]


def test_decoder_yields_packets_back_to_back_from_one_chunk():
    decoder = Decoder()
    decoder.feed(bytes.fromhex("c0 00 d0 00 40 02 00 01 e0"))
    assert decode_all(decoder) == [PingReq(), PingResp(), PubAck(1)]
    assert decoder.buffered == 1
    decoder.feed(b"\x00")
    assert decode_all(decoder) == [Disconnect()]
