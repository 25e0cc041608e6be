"""MqttConnection: the handshake, who may send what when, keep-alive and packet ids."""

import pytest
from mqtt_helpers import ConnectionPair, drain

from opendps.protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    ConnAckCode,
    Connect,
    ConnectionClosed,
    ConnectionState,
    Disconnect,
    LocalProtocolError,
    MqttConnection,
    MqttProtocolError,
    PacketTooLargeError,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Role,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    UnsupportedProtocolLevelError,
    encode,
)

CONNECT = Connect("dev-1", "hub/dev-1/?api-version=2021-04-12", b"sas", 30, True, None)
CONNECTED = ConnectionState.CONNECTED
CLOSED = ConnectionState.CLOSED


def connected_pair() -> ConnectionPair:
    pair = ConnectionPair()
    assert pair.client_sends(CONNECT) == [CONNECT]
    assert pair.server_sends(ConnAck(False, 0)) == [ConnAck(False, 0)]
    return pair


def server_fed(*chunks: bytes) -> tuple[MqttConnection, list]:
    server = MqttConnection(Role.SERVER)
    for chunk in chunks:
        server.receive_data(chunk)
    return server, drain(server)


def test_full_exchange_between_client_and_server():
    pair = ConnectionPair()
    client, server = pair.client, pair.server
    assert (client.state, server.state) == (ConnectionState.AWAIT_CONNECT,) * 2

    assert pair.client_sends(CONNECT) == [CONNECT]
    assert server.state is ConnectionState.CONNECTING
    assert server.next_event() is PAUSED
    assert server.keep_alive == client.keep_alive == 30
    assert pair.server_sends(ConnAck(False, ConnAckCode.ACCEPTED)) == [ConnAck(False, 0)]
    assert (client.state, server.state) == (CONNECTED, CONNECTED)

    subscribe = Subscribe(client.next_packet_id(), (("devices/dev-1/messages/devicebound/#", 1),))
    assert pair.client_sends(subscribe) == [subscribe]
    assert pair.server_sends(SubAck(subscribe.packet_id, (1,))) == [SubAck(1, (1,))]

    telemetry = Publish("devices/dev-1/messages/events/", b"t=21", 1, client.next_packet_id())
    assert client.inflight == set()  # allocating an id is not sending
    assert pair.client_sends(telemetry) == [telemetry]
    assert client.inflight == {2}
    assert pair.server_sends(PubAck(2)) == [PubAck(2)]
    assert client.inflight == set()

    c2d = Publish("devices/dev-1/messages/devicebound/x", b"hello", 1, server.next_packet_id())
    assert pair.server_sends(c2d) == [c2d]
    assert server.inflight == {c2d.packet_id}
    assert pair.client_sends(PubAck(c2d.packet_id)) == [PubAck(1)]
    assert server.inflight == set()

    assert pair.client_sends(Publish("devices/dev-1/messages/events/", b"q0")) == [
        Publish("devices/dev-1/messages/events/", b"q0", 0, None)
    ]
    assert pair.client_sends(PingReq()) == [PingReq()]
    assert pair.server_sends(PingResp()) == [PingResp()]
    assert pair.client_sends(Unsubscribe(3, ("a/#",))) == [Unsubscribe(3, ("a/#",))]
    assert pair.server_sends(UnsubAck(3)) == [UnsubAck(3)]

    events = pair.client_sends(Disconnect())
    assert events == [Disconnect(), ConnectionClosed("peer sent DISCONNECT")]
    assert (client.state, server.state) == (CLOSED, CLOSED)
    assert client.next_event() == ConnectionClosed("sent DISCONNECT")


def test_qos2_flow_clears_inflight_on_pubcomp():
    pair = connected_pair()
    publish = Publish("a", b"x", 2, pair.server.next_packet_id())
    assert pair.server_sends(publish) == [publish]
    assert pair.client_sends(PubRec(1)) == [PubRec(1)]
    assert pair.server.inflight == {1}
    assert pair.server_sends(PubRel(1)) == [PubRel(1)]
    assert pair.client_sends(PubComp(1)) == [PubComp(1)]
    assert pair.server.inflight == set()


def test_pingreq_is_not_answered_automatically():
    pair = connected_pair()
    pair.server.receive_data(encode(PingReq()))
    assert pair.server.next_event() == PingReq()
    assert pair.server.next_event() is NEED_DATA
    assert pair.server.send(PingResp()) == b"\xd0\x00"


# ------------------------------------------------------------ CONNECT / CONNACK


def test_packets_pipelined_behind_connect_wait_for_the_connack():
    pair = ConnectionPair()
    wire = pair.client.send(CONNECT) + pair.client.send(Publish("a", b"early"))
    pair.server.receive_data(wire)
    assert pair.server.next_event() == CONNECT
    assert pair.server.next_event() is PAUSED
    assert pair.server.next_event() is PAUSED
    pair.server.send(ConnAck(False, 0))
    assert drain(pair.server) == [Publish("a", b"early")]


def test_refused_connect_discards_pipelined_packets():
    pair = ConnectionPair()
    pair.server.receive_data(pair.client.send(CONNECT) + pair.client.send(Publish("a", b"x")))
    assert drain(pair.server) == [CONNECT]
    wire = pair.server.send(ConnAck(False, ConnAckCode.NOT_AUTHORIZED))
    assert wire == bytes.fromhex("20 02 00 05")
    assert pair.server.state is CLOSED
    closed = ConnectionClosed("refused the connection: NOT_AUTHORIZED")
    assert drain(pair.server) == [closed]

    pair.client.receive_data(wire)
    assert drain(pair.client) == [
        ConnAck(False, 5),
        ConnectionClosed("server refused the connection: NOT_AUTHORIZED"),
    ]
    assert pair.client.state is CLOSED


def test_wrong_protocol_level_leaves_room_for_connack_1():
    server, events = server_fed(encode(Connect("old", protocol_level=3)))
    (closed,) = events
    assert isinstance(closed.error, UnsupportedProtocolLevelError)
    assert closed.error.connack_hint is ConnAckCode.UNACCEPTABLE_PROTOCOL_VERSION
    assert closed.reason == "protocol error: " + str(closed.error)
    assert server.state is ConnectionState.REFUSING
    with pytest.raises(LocalProtocolError, match="may not send ConnAck in state REFUSING"):
        server.send(ConnAck(False, 0))
    assert server.send(ConnAck(False, closed.error.connack_hint)) == bytes.fromhex("20 02 00 01")
    assert server.state is CLOSED
    assert server.next_event() is closed
    with pytest.raises(LocalProtocolError):
        server.send(ConnAck(False, 1))


def test_rejected_client_id_leaves_room_for_connack_2():
    server, (closed,) = server_fed(bytes.fromhex("10 0c 00 04 4d 51 54 54 04 00 00 3c 00 00"))
    assert closed.error.connack_hint is ConnAckCode.IDENTIFIER_REJECTED
    assert server.send(ConnAck(False, 2)) == bytes.fromhex("20 02 00 02")


def test_malformed_connect_gets_no_connack():
    server, (closed,) = server_fed(bytes.fromhex("10 0c 00 04 4d 51 54 54 04 01 00 3c 00 00"))
    assert closed.error.connack_hint is None
    assert server.state is CLOSED
    with pytest.raises(LocalProtocolError):
        server.send(ConnAck(False, 2))


def test_publish_before_connect_closes():
    server, events = server_fed(encode(Publish("a/b", b"x")))
    (closed,) = events
    assert type(closed.error) is MqttProtocolError
    assert str(closed.error) == "expected CONNECT, received PUBLISH (§3.1.0-1)"
    assert closed.error.connack_hint is None
    assert server.state is CLOSED


def test_second_connect_closes():
    pair = connected_pair()
    pair.server.receive_data(encode(CONNECT))
    (closed,) = drain(pair.server)
    assert str(closed.error) == "received a second CONNECT (§3.1.0-2)"
    assert pair.server.state is CLOSED


def test_client_may_not_receive_anything_before_connack():
    client = MqttConnection(Role.CLIENT)
    client.send(CONNECT)
    client.receive_data(encode(PingResp()))
    (closed,) = drain(client)
    assert str(closed.error) == "expected CONNACK, received PINGRESP (§3.2.0-1)"


def test_client_rejects_data_before_it_sent_connect():
    client = MqttConnection(Role.CLIENT)
    client.receive_data(encode(ConnAck(False, 0)))
    (closed,) = drain(client)
    assert str(closed.error) == "a client may not receive CONNACK in state AWAIT_CONNECT"


@pytest.mark.parametrize(
    "packet", [SubAck(1, (0,)), UnsubAck(1), PingResp(), ConnAck(False, 0)], ids=repr
)
def test_server_rejects_server_to_client_packets(packet):
    pair = connected_pair()
    pair.server.receive_data(encode(packet))
    (closed,) = drain(pair.server)
    name = packet.packet_type.name
    assert str(closed.error) == f"a server may not receive {name} in state CONNECTED"


@pytest.mark.parametrize(
    "packet", [Subscribe(1, (("a", 0),)), Unsubscribe(1, ("a",)), PingReq(), Disconnect(), CONNECT]
)
def test_client_rejects_client_to_server_packets(packet):
    pair = connected_pair()
    pair.client.receive_data(encode(packet))
    (closed,) = drain(pair.client)
    assert closed.error is not None
    assert pair.client.state is CLOSED


# ------------------------------------------------------------ close, EOF, oversize


def test_truncated_packet_then_eof_closes_with_error():
    pair = connected_pair()
    wire = encode(Publish("a/b", b"payload", 1, 5))
    pair.server.receive_data(wire[:-3])
    assert pair.server.next_event() is NEED_DATA
    pair.server.receive_data(b"")
    (closed,) = drain(pair.server)
    assert type(closed.error) is MqttProtocolError
    assert str(closed.error) == "connection closed in the middle of a packet (13 bytes)"
    assert closed.reason == "protocol error: " + str(closed.error)
    assert pair.server.state is CLOSED


def test_clean_eof_closes_without_error():
    pair = connected_pair()
    pair.server.receive_data(encode(PingReq()))
    pair.server.receive_data(b"")
    assert drain(pair.server) == [PingReq(), ConnectionClosed("connection closed by peer")]


def test_oversized_packet_closes_from_the_fixed_header_alone():
    server = MqttConnection(Role.SERVER, max_packet_size=4096)
    server.receive_data(encode(CONNECT))
    drain(server)
    server.send(ConnAck(False, 0))
    server.receive_data(bytes.fromhex("30 80 ad e2 04"))  # PUBLISH claiming 10 MB
    (closed,) = drain(server)
    assert type(closed.error) is PacketTooLargeError
    assert closed.error.size == 10_000_005


def test_closed_is_final_and_repeated_and_ignores_data():
    server, (closed,) = server_fed(b"\xf0")
    server.receive_data(encode(CONNECT))
    server.receive_data(b"")
    assert server.next_event() is closed
    assert server.next_event() is closed
    server.handle_timer(1e9)
    assert server.next_event() is closed


def test_receive_data_after_eof_is_a_local_error():
    server = MqttConnection(Role.SERVER)
    server.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF"):
        server.receive_data(b"\x10")


# ------------------------------------------------------------ local errors


@pytest.mark.parametrize(
    ("role", "packet", "state"),
    [
        (Role.CLIENT, ConnAck(False, 0), "AWAIT_CONNECT"),
        (Role.CLIENT, Publish("a", b""), "AWAIT_CONNECT"),
        (Role.SERVER, ConnAck(False, 0), "AWAIT_CONNECT"),
        (Role.SERVER, Publish("a", b""), "AWAIT_CONNECT"),
        (Role.SERVER, CONNECT, "AWAIT_CONNECT"),
    ],
)
def test_illegal_sends_before_the_handshake(role, packet, state):
    conn = MqttConnection(role)
    with pytest.raises(LocalProtocolError, match=f"in state {state}"):
        conn.send(packet)
    assert conn.state is ConnectionState.AWAIT_CONNECT


@pytest.mark.parametrize(
    ("side", "packet"),
    [
        ("server", ConnAck(False, 0)),  # twice
        ("server", Disconnect()),  # servers never send DISCONNECT in 3.1.1
        ("server", Subscribe(1, (("a", 0),))),
        ("server", PingReq()),
        ("client", ConnAck(False, 0)),
        ("client", CONNECT),
        ("client", SubAck(1, (0,))),
        ("client", PingResp()),
    ],
)
def test_illegal_sends_when_connected(side, packet):
    conn = getattr(connected_pair(), side)
    with pytest.raises(LocalProtocolError, match="in state CONNECTED"):
        conn.send(packet)
    assert conn.state is CONNECTED


def test_client_may_pipeline_before_connack_and_disconnect():
    client = MqttConnection(Role.CLIENT)
    client.send(CONNECT)
    client.send(Subscribe(1, (("a", 1),)))
    client.send(Publish("a", b"", 1, 2))
    with pytest.raises(LocalProtocolError):
        client.send(PubAck(1))
    client.send(Disconnect())
    assert client.state is CLOSED
    with pytest.raises(LocalProtocolError, match="in state CLOSED"):
        client.send(PingReq())


def test_unencodable_packet_changes_nothing():
    pair = connected_pair()
    with pytest.raises(LocalProtocolError, match="wildcard"):
        pair.server.send(Publish("a/#", b"", 1, 1))
    assert pair.server.inflight == set()
    assert pair.server.state is CONNECTED


def test_reusing_an_inflight_packet_id_needs_dup():
    pair = connected_pair()
    pair.server.send(Publish("a", b"", 1, 9))
    with pytest.raises(LocalProtocolError, match="packet id 9 is in flight"):
        pair.server.send(Publish("a", b"", 1, 9))
    pair.server.send(Publish("a", b"", 1, 9, dup=True))
    assert pair.server.inflight == {9}


def test_unknown_puback_is_passed_through():
    pair = connected_pair()
    assert pair.client_sends(PubAck(77)) == [PubAck(77)]
    assert pair.server.state is CONNECTED


# ------------------------------------------------------------ packet ids


def test_packet_ids_cycle_and_skip_inflight():
    pair = connected_pair()
    server = pair.server
    assert [server.next_packet_id() for _ in range(3)] == [1, 2, 3]
    server.send(Publish("a", b"", 1, 1))
    server.send(Publish("a", b"", 1, 5))
    ids = [server.next_packet_id() for _ in range(65535 - 3)]
    assert ids[0] == 4 and ids[1] == 6 and ids[-1] == 2
    assert 1 not in ids and 5 not in ids
    assert server.next_packet_id() == 3


def test_packet_ids_exhausted():
    pair = connected_pair()
    server = pair.server
    for _ in range(65535):
        server.send(Publish("a", b"", 1, server.next_packet_id()))
    with pytest.raises(LocalProtocolError, match="all 65535 packet ids are in flight"):
        server.next_packet_id()
    pair.client_sends(PubAck(300))
    assert server.next_packet_id() == 300


# ------------------------------------------------------------ keep-alive


def test_keep_alive_deadline_is_one_and_a_half_periods_after_last_receive():
    server = MqttConnection(Role.SERVER)
    assert server.get_timer() is None
    server.receive_data(encode(Connect("d", keep_alive=10)), now=100.0)
    assert server.get_timer() is None  # keep-alive is unknown until the CONNECT is decoded
    drain(server)
    assert server.get_timer() == 115.0
    server.send(ConnAck(False, 0))
    server.handle_timer(114.9)
    assert server.next_event() is NEED_DATA
    server.receive_data(encode(PingReq())[:1], now=110.0)  # any bytes count as activity
    assert server.get_timer() == 125.0
    server.handle_timer(124.0)
    assert server.state is CONNECTED
    server.handle_timer(125.0)
    assert server.state is CLOSED
    assert server.get_timer() is None
    assert server.next_event() == ConnectionClosed("keep-alive timeout")


def test_keep_alive_zero_means_no_timer():
    server = MqttConnection(Role.SERVER)
    server.receive_data(encode(Connect("d", keep_alive=0)), now=5.0)
    drain(server)
    assert server.get_timer() is None
    server.handle_timer(1e12)
    assert server.state is ConnectionState.CONNECTING


def test_client_timer_starts_with_the_first_bytes_from_the_server():
    client = MqttConnection(Role.CLIENT)
    client.send(Connect("d", keep_alive=4))
    assert client.keep_alive == 4
    assert client.get_timer() is None
    client.receive_data(encode(ConnAck(False, 0)), now=50.0)
    assert client.get_timer() == 56.0
