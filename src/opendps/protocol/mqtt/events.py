"""What ``MqttConnection.next_event`` returns besides packets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import MqttProtocolError
from .packets import Packet


class Sentinel(Enum):
    """Non-events: nothing to hand out right now, and why."""

    NEED_DATA = "NEED_DATA"  # feed more bytes with receive_data()
    PAUSED = "PAUSED"  # server: answer the CONNECT with send(ConnAck(...)) first

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection is over; the caller should close the socket.

    Always the last event, and returned again on every later ``next_event`` call. ``error`` is
    set when the peer broke the protocol; ``error.connack_hint`` says whether a refusing CONNACK
    is still owed (the connection is then in REFUSING and ``send`` accepts exactly that).
    """

    reason: str
    error: MqttProtocolError | None = None


Event = Packet | ConnectionClosed
