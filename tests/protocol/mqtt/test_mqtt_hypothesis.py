"""Property tests: valid packets survive a round trip; hostile bytes never raise.

Run deeper with HYPOTHESIS_PROFILE=deep (profiles live in conftest.py).
"""

from hypothesis import given
from hypothesis import strategies as st
from mqtt_helpers import decode_all
from mqtt_strategies import PROFILE, chunked, hostile_streams, packets

from opendps.protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    Connect,
    ConnectionClosed,
    ConnectionState,
    Decoder,
    MqttConnection,
    MqttProtocolError,
    Packet,
    Role,
    encode,
)


@PROFILE
@given(st.lists(packets, min_size=1, max_size=6), st.data())
def test_encode_then_decode_is_identity_in_any_chunking(sent, data):
    wire = b"".join(encode(packet) for packet in sent)
    decoder = Decoder()
    received = []
    for chunk in data.draw(chunked(wire)):
        decoder.feed(chunk)
        received += decode_all(decoder)
    assert received == sent
    assert decoder.buffered == 0


@PROFILE
@given(packets)
def test_decode_then_encode_gives_the_same_bytes(packet):
    wire = encode(packet)
    decoder = Decoder()
    decoder.feed(wire)
    (decoded,) = decode_all(decoder)
    assert encode(decoded) == wire


def run_hostile(conn: MqttConnection, chunks: list[bytes], accept: bool) -> list:
    """Feed chunks the way a server loop would; return every event. Nothing may raise."""
    events: list = []
    now = 0.0
    for chunk in [*chunks, b""]:
        now += 1.0
        conn.receive_data(chunk, now=now)
        conn.handle_timer(now)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                assert conn.role is Role.SERVER
                conn.send(ConnAck(False, 0 if accept else 5))
                continue
            assert isinstance(event, Packet | ConnectionClosed), event
            events.append(event)
            if isinstance(event, ConnectionClosed):
                hint = event.error.connack_hint if event.error else None
                if hint is not None and conn.state is ConnectionState.REFUSING:
                    conn.send(ConnAck(False, hint))
                assert conn.next_event() is event
                break
        if events and isinstance(events[-1], ConnectionClosed):
            break
    assert isinstance(events[-1], ConnectionClosed)
    assert conn.state is ConnectionState.CLOSED
    return events


@PROFILE
@given(hostile_streams(), st.data(), st.booleans(), st.sampled_from([64, 1024, 1 << 20]))
def test_server_survives_any_bytes_in_any_chunking(wire, data, accept, limit):
    server = MqttConnection(Role.SERVER, max_packet_size=limit)
    events = run_hostile(server, data.draw(chunked(wire)), accept)
    if len(events) > 1:
        assert isinstance(events[0], Connect)


def normalized(events: list) -> list:
    """Events with errors compared by type and message (exceptions compare by identity)."""
    return [
        (e.reason, type(e.error), str(e.error)) if isinstance(e, ConnectionClosed) else e
        for e in events
    ]


@PROFILE
@given(hostile_streams(), st.data())
def test_hostile_stream_events_do_not_depend_on_chunking(wire, data):
    whole = run_hostile(
        MqttConnection(Role.SERVER, max_packet_size=1024), [wire] if wire else [], True
    )
    chunks = data.draw(chunked(wire))
    split = run_hostile(MqttConnection(Role.SERVER, max_packet_size=1024), chunks, True)
    assert normalized(split) == normalized(whole)


@PROFILE
@given(hostile_streams(), st.data())
def test_client_survives_any_bytes_in_any_chunking(wire, data):
    client = MqttConnection(Role.CLIENT, max_packet_size=1024)
    client.send(Connect("fuzz", keep_alive=3))
    run_hostile(client, data.draw(chunked(wire)), accept=True)


@PROFILE
@given(hostile_streams(), st.data())
def test_decoder_raises_only_protocol_errors(wire, data):
    decoder = Decoder(max_packet_size=512)
    try:
        for chunk in data.draw(chunked(wire)):
            decoder.feed(chunk)
            decode_all(decoder)
    except MqttProtocolError:
        pass
