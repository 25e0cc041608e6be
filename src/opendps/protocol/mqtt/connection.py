"""An MQTT 3.1.1 connection without I/O: bytes in, events out; packets in, bytes out.

Like h11 and wsproto it never touches a socket or a clock: the caller feeds received bytes with
``receive_data``, drains ``next_event`` until NEED_DATA, writes what ``send`` returns, and drives
keep-alive with ``get_timer``/``handle_timer``. Nothing is answered automatically (not even
PINGREQ), so every byte on the wire is one the caller chose to send.
"""

from __future__ import annotations

from .codec import DEFAULT_MAX_PACKET_SIZE, Decoder, encode
from .errors import LocalProtocolError, MqttProtocolError
from .events import NEED_DATA, PAUSED, ConnectionClosed, Event, Sentinel
from .packets import ConnAck, ConnAckCode, Connect, Disconnect, Packet, PubAck, PubComp, Publish
from .rules import MAX_PACKET_ID
from .state import ConnectionState, Direction, Role, Verdict, next_state, trigger_of

_CLOSED = ConnectionState.CLOSED


class MqttConnection:
    """One side (``role``) of one MQTT 3.1.1 network connection.

    A server's ``next_event`` returns PAUSED after CONNECT until it sends CONNACK: packets the
    client pipelined behind CONNECT must not be processed if the CONNECT is refused (§3.1.4-5).
    """

    def __init__(self, role: Role, *, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self.role = role
        self._decoder = Decoder(max_packet_size)
        self._state = ConnectionState.AWAIT_CONNECT
        self._closed: ConnectionClosed | None = None
        self._eof = False
        self._keep_alive: int | None = None
        self._last_receive: float | None = None
        self._inflight: set[int] = set()
        self._last_packet_id = 0

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def keep_alive(self) -> int | None:
        """Seconds from the CONNECT (received by a server, sent by a client); None before it."""
        return self._keep_alive

    @property
    def inflight(self) -> frozenset[int]:
        """Packet ids of our QoS>0 PUBLISHes not yet acknowledged (PUBACK, or PUBCOMP for QoS 2)."""
        return frozenset(self._inflight)

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        """Buffer bytes from the peer; ``b""`` means EOF. ``now`` restarts the keep-alive clock."""
        if self._closed is not None:
            return
        if self._eof:
            raise LocalProtocolError("receive_data() called after EOF")
        if not data:
            self._eof = True
            return
        self._last_receive = now
        self._decoder.feed(data)

    def next_event(self) -> Event | Sentinel:
        """The next packet from the peer, NEED_DATA, PAUSED, or the final ConnectionClosed.

        Never raises for anything the peer sent: violations become ConnectionClosed(error=...).
        """
        if self._closed is not None:
            return self._closed
        if self.role is Role.SERVER and self._state is ConnectionState.CONNECTING:
            return PAUSED
        try:
            packet = self._decoder.next_packet()
            if packet is None:
                return self._end_of_data()
            self._apply_received(packet)
        except MqttProtocolError as exc:
            return self._fail(exc)
        return packet

    def _end_of_data(self) -> Sentinel | ConnectionClosed:
        if not self._eof:
            return NEED_DATA
        if self._decoder.buffered:
            raise MqttProtocolError(
                f"connection closed in the middle of a packet ({self._decoder.buffered} bytes)"
            )
        return self._close("connection closed by peer")

    def _apply_received(self, packet: Packet) -> None:
        new_state = next_state(self.role, self._state, Direction.RECEIVE, trigger_of(packet))
        if new_state is None:
            raise MqttProtocolError(self._unexpected(packet))
        if isinstance(packet, Connect):
            self._keep_alive = packet.keep_alive
        elif isinstance(packet, PubAck | PubComp):
            self._inflight.discard(packet.packet_id)
        self._state = new_state
        if new_state is _CLOSED:
            if isinstance(packet, ConnAck):
                self._close(f"server refused the connection: {_rc_name(packet.return_code)}")
            else:
                self._close("peer sent DISCONNECT")

    def _unexpected(self, packet: Packet) -> str:
        name = packet.packet_type.name
        if self._state is ConnectionState.AWAIT_CONNECT and self.role is Role.SERVER:
            return f"expected CONNECT, received {name} (§3.1.0-1)"
        if self._state is ConnectionState.CONNECTING and self.role is Role.CLIENT:
            return f"expected CONNACK, received {name} (§3.2.0-1)"
        if isinstance(packet, Connect):
            return "received a second CONNECT (§3.1.0-2)"
        return f"a {self.role.value} may not receive {name} in state {self._state.name}"

    def _fail(self, error: MqttProtocolError) -> ConnectionClosed:
        refusing = None
        if error.connack_hint is not None:
            refusing = next_state(
                self.role, self._state, Direction.RECEIVE, Verdict.CONNECT_UNACCEPTABLE
            )
        closed = self._close(f"protocol error: {error}", error)
        self._state = refusing or _CLOSED
        return closed

    def _close(self, reason: str, error: MqttProtocolError | None = None) -> ConnectionClosed:
        self._state = _CLOSED
        if self._closed is None:
            self._closed = ConnectionClosed(reason, error)
        return self._closed

    # ------------------------------------------------------------------ sending

    def send(self, packet: Packet) -> bytes:
        """The bytes to write for ``packet``, after checking it is legal now for this role.

        Raises LocalProtocolError (and changes nothing) when it is not.
        """
        new_state = next_state(self.role, self._state, Direction.SEND, trigger_of(packet))
        if new_state is None:
            raise LocalProtocolError(
                f"a {self.role.value} may not send {type(packet).__name__} "
                f"in state {self._state.name}"
            )
        data = encode(packet)
        if isinstance(packet, Publish) and packet.qos:
            assert packet.packet_id is not None  # encode() checked it
            if packet.packet_id in self._inflight and not packet.dup:
                raise LocalProtocolError(
                    f"packet id {packet.packet_id} is in flight; a resend needs dup=True"
                )
            self._inflight.add(packet.packet_id)
        elif isinstance(packet, Connect):
            self._keep_alive = packet.keep_alive
        self._state = new_state
        if new_state is _CLOSED:
            if isinstance(packet, Disconnect):
                self._close("sent DISCONNECT")
            elif isinstance(packet, ConnAck):
                self._close(f"refused the connection: {_rc_name(packet.return_code)}")
        return data

    def next_packet_id(self) -> int:
        """A packet id for an outgoing QoS>0 PUBLISH (or SUBSCRIBE): 1..65535, never in flight."""
        for _ in range(MAX_PACKET_ID):
            self._last_packet_id = self._last_packet_id % MAX_PACKET_ID + 1
            if self._last_packet_id not in self._inflight:
                return self._last_packet_id
        raise LocalProtocolError("all 65535 packet ids are in flight")

    # ------------------------------------------------------------------ keep-alive

    def get_timer(self) -> float | None:
        """When the peer is overdue (last receive + 1.5 x keep-alive, §3.1.2.10); None if never."""
        if self._closed is not None or not self._keep_alive or self._last_receive is None:
            return None
        return self._last_receive + 1.5 * self._keep_alive

    def handle_timer(self, now: float) -> None:
        """Close the connection if the keep-alive deadline has passed at ``now``."""
        deadline = self.get_timer()
        if deadline is not None and now >= deadline:
            self._close("keep-alive timeout")


def _rc_name(return_code: int) -> str:
    try:
        return ConnAckCode(return_code).name
    except ValueError:
        return str(return_code)


__all__ = ["NEED_DATA", "PAUSED", "ConnectionClosed", "MqttConnection", "Role"]
