"""Which packet may be sent or received when, written down as a table (after h11's _state.py).

One state per connection suffices for MQTT: the handshake is strictly CONNECT then CONNACK and
everything after it is symmetric request/acknowledge traffic. A missing table entry is a
protocol error: the peer's (MqttProtocolError) on receive, ours (LocalProtocolError) on send.
"""

from __future__ import annotations

from enum import Enum, auto

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


class _Member(Enum):
    """Members are singletons compared by identity, so hashing by identity is consistent;
    ``Enum.__hash__`` hashes the name in Python, and every packet looks up a tuple of three."""

    __hash__ = object.__hash__


class Role(_Member):
    CLIENT = "client"
    SERVER = "server"


class ConnectionState(_Member):
    AWAIT_CONNECT = auto()  # nothing yet: the client must speak first, with CONNECT
    CONNECTING = auto()  # CONNECT went through, CONNACK has not
    CONNECTED = auto()  # CONNACK accepted the session
    REFUSING = auto()  # server only: a CONNECT was unacceptable, a refusing CONNACK may follow
    CLOSED = auto()  # nothing more may be sent or received


class Direction(_Member):
    SEND = "send"
    RECEIVE = "receive"


class Verdict(_Member):
    """Triggers that are not a packet type on their own."""

    CONNACK_REFUSED = auto()  # a ConnAck whose return code is not ACCEPTED
    CONNECT_UNACCEPTABLE = auto()  # a CONNECT the codec rejected with a connack hint


Trigger = type[Packet] | Verdict

_S, _C = Role.SERVER, Role.CLIENT
_SEND, _RECEIVE = Direction.SEND, Direction.RECEIVE
AWAIT_CONNECT = ConnectionState.AWAIT_CONNECT
CONNECTING = ConnectionState.CONNECTING
CONNECTED = ConnectionState.CONNECTED
REFUSING = ConnectionState.REFUSING
CLOSED = ConnectionState.CLOSED

# Once connected: what flows client -> server and server -> client.
_UPSTREAM: tuple[type[Packet], ...] = (
    Publish, PubAck, PubRec, PubRel, PubComp, Subscribe, Unsubscribe, PingReq,
)  # fmt: skip
_DOWNSTREAM: tuple[type[Packet], ...] = (
    Publish, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, PingResp,
)  # fmt: skip
# A client need not wait for CONNACK (§3.1.4); the server holds these back until it answers.
_PIPELINED: tuple[type[Packet], ...] = (Publish, Subscribe, Unsubscribe, PingReq)

TRANSITIONS: dict[tuple[Role, ConnectionState, Direction, Trigger], ConnectionState] = {
    # server
    (_S, AWAIT_CONNECT, _RECEIVE, Connect): CONNECTING,
    (_S, AWAIT_CONNECT, _RECEIVE, Verdict.CONNECT_UNACCEPTABLE): REFUSING,
    (_S, CONNECTING, _SEND, ConnAck): CONNECTED,
    (_S, CONNECTING, _SEND, Verdict.CONNACK_REFUSED): CLOSED,
    (_S, REFUSING, _SEND, Verdict.CONNACK_REFUSED): CLOSED,
    (_S, CONNECTED, _RECEIVE, Disconnect): CLOSED,
    **{(_S, CONNECTED, _RECEIVE, packet): CONNECTED for packet in _UPSTREAM},
    **{(_S, CONNECTED, _SEND, packet): CONNECTED for packet in _DOWNSTREAM},
    # client
    (_C, AWAIT_CONNECT, _SEND, Connect): CONNECTING,
    (_C, CONNECTING, _RECEIVE, ConnAck): CONNECTED,
    (_C, CONNECTING, _RECEIVE, Verdict.CONNACK_REFUSED): CLOSED,
    (_C, CONNECTING, _SEND, Disconnect): CLOSED,
    **{(_C, CONNECTING, _SEND, packet): CONNECTING for packet in _PIPELINED},
    (_C, CONNECTED, _SEND, Disconnect): CLOSED,
    **{(_C, CONNECTED, _SEND, packet): CONNECTED for packet in _UPSTREAM},
    **{(_C, CONNECTED, _RECEIVE, packet): CONNECTED for packet in _DOWNSTREAM},
}


def trigger_of(packet: Packet) -> Trigger:
    """The table key for ``packet``: its type, except that refusing CONNACKs end the session."""
    if isinstance(packet, ConnAck) and packet.return_code != ConnAckCode.ACCEPTED:
        return Verdict.CONNACK_REFUSED
    return type(packet)


def next_state(
    role: Role, state: ConnectionState, direction: Direction, trigger: Trigger
) -> ConnectionState | None:
    """The state after ``trigger``, or None when it is illegal here."""
    return TRANSITIONS.get((role, state, direction, trigger))
