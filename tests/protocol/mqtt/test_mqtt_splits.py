"""A packet stream decodes to the same events however TCP happens to slice it."""

import itertools

import pytest
from mqtt_helpers import (
    CLIENT_STREAM,
    SERVER_STREAM,
    ConnectionPair,
    decode_all,
    drain,
    drain_accepting,
    split_at,
)

from opendps.protocol.mqtt import (
    ConnAck,
    Connect,
    ConnectionClosed,
    Decoder,
    MqttConnection,
    PingReq,
    Role,
    encode,
)

ALL_PACKETS = CLIENT_STREAM + SERVER_STREAM
WIRE = b"".join(encode(p) for p in ALL_PACKETS)


def decode_chunks(chunks):
    decoder = Decoder()
    packets = []
    for chunk in chunks:
        decoder.feed(chunk)
        packets += decode_all(decoder)
    assert decoder.buffered == 0
    return packets


def test_whole_stream_decodes():
    assert decode_chunks([WIRE]) == ALL_PACKETS


def test_one_byte_at_a_time():
    assert decode_chunks([WIRE[i : i + 1] for i in range(len(WIRE))]) == ALL_PACKETS


def test_every_single_split_offset():
    for cut in range(len(WIRE) + 1):
        assert decode_chunks(split_at(WIRE, [cut])) == ALL_PACKETS, cut


def test_every_pair_of_split_offsets_across_small_packets():
    small = [p for p in ALL_PACKETS if len(encode(p)) <= 40]
    wire = b"".join(encode(p) for p in small)
    for cuts in itertools.combinations(range(len(wire) + 1), 2):
        assert decode_chunks(split_at(wire, list(cuts))) == small, cuts


def feed_server(chunks):
    server = MqttConnection(Role.SERVER)
    events = []
    for chunk in chunks:
        server.receive_data(chunk)
        events += drain_accepting(server)
    return events


def feed_client(chunks):
    client = MqttConnection(Role.CLIENT)
    client.send(Connect("dev-1"))
    events = []
    for chunk in chunks:
        client.receive_data(chunk)
        events += drain(client)
    return events


@pytest.mark.parametrize(
    ("feed", "stream"),
    [(feed_server, CLIENT_STREAM), (feed_client, SERVER_STREAM)],
    ids=["server-receives", "client-receives"],
)
def test_connection_events_identical_at_every_split(feed, stream):
    wire = b"".join(encode(p) for p in stream)
    expected = feed([wire])
    packets = [e for e in expected if not isinstance(e, ConnectionClosed)]
    assert packets == stream
    assert feed([wire[i : i + 1] for i in range(len(wire))]) == expected
    for cut in range(len(wire) + 1):
        assert feed(split_at(wire, [cut])) == expected, cut


def test_pipelined_packets_in_the_connect_segment_wait_for_connack():
    pair = ConnectionPair()
    wire = pair.client.send(Connect("d", keep_alive=5)) + pair.client.send(PingReq())
    for cut in range(len(wire) + 1):
        server = MqttConnection(Role.SERVER)
        events = []
        for chunk in split_at(wire, [cut]):
            server.receive_data(chunk)
            events += drain(server)
        assert events == [Connect("d", keep_alive=5)]
        server.send(ConnAck(False, 0))
        assert drain(server) == [PingReq()]
