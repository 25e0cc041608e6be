"""Shared test plumbing: draining events and a client/server MqttConnection pair."""

from __future__ import annotations

import itertools

from opendps.protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    Connect,
    ConnectionClosed,
    ConnectionState,
    Decoder,
    Disconnect,
    Event,
    MqttConnection,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Role,
    Sentinel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)


def drain(conn: MqttConnection) -> list[Event]:
    """Every event available now, stopping at NEED_DATA, PAUSED or (inclusive) ConnectionClosed."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return events
        assert not isinstance(event, Sentinel)
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def drain_accepting(conn: MqttConnection) -> list[Event]:
    """Like ``drain`` for a server that accepts every CONNECT, so pipelined packets flow."""
    events: list[Event] = []
    while True:
        events += drain(conn)
        if conn.state is ConnectionState.CONNECTING:
            conn.send(ConnAck(False, 0))
            continue
        return events


def decode_all(decoder: Decoder) -> list[Packet]:
    packets = []
    while (packet := decoder.next_packet()) is not None:
        packets.append(packet)
    return packets


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets, without empty chunks (b"" would mean EOF)."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


class ConnectionPair:
    """A client-role and a server-role connection wired back to back, without sockets."""

    def __init__(self) -> None:
        self.client = MqttConnection(Role.CLIENT)
        self.server = MqttConnection(Role.SERVER)

    def client_sends(self, *packets: Packet) -> list[Event]:
        """Send from the client; return what the server sees."""
        for packet in packets:
            self.server.receive_data(self.client.send(packet))
        return drain(self.server)

    def server_sends(self, *packets: Packet) -> list[Event]:
        """Send from the server; return what the client sees."""
        for packet in packets:
            self.client.receive_data(self.server.send(packet))
        return drain(self.client)


# One of everything a client sends, and one of everything a server sends, in a legal order.
CLIENT_STREAM: list[Packet] = [
    Connect("dev-1", "hub/dev-1/?api-version=2021-04-12", b"SharedAccessSignature sr=x", 60),
    Subscribe(1, (("devices/dev-1/messages/devicebound/#", 1), ("$iothub/methods/POST/#", 0))),
    Publish("devices/dev-1/messages/events/a=b", b"telemetry" * 20, 1, 2),
    Publish("$iothub/twin/GET/?$rid=3", b"", 0, None),
    PubAck(7),
    PubRec(8),
    PubRel(9),
    PubComp(10),
    PingReq(),
    Unsubscribe(3, ("$iothub/methods/POST/#",)),
    Disconnect(),
]
SERVER_STREAM: list[Packet] = [
    ConnAck(False, 0),
    SubAck(1, (1, 0x80)),
    PubAck(2),
    Publish("devices/dev-1/messages/devicebound/%24.mid=1", bytes(range(256)), 1, 7),
    Publish("$iothub/twin/res/200/?$rid=3", b"{}", 0, None, retain=True),
    PubRec(11),
    PubRel(12),
    PubComp(13),
    PingResp(),
    UnsubAck(3),
]
