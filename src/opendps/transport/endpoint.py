"""The MQTT endpoint shared by the TLS listener and the WebSocket bridge: bytes in, the sans-I/O
connection in the middle, packets handled one at a time by the session the CONNECT chose."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    ConnAckCode,
    Connect,
    ConnectionClosed,
    Disconnect,
    LocalProtocolError,
    MqttConnection,
    Packet,
    PingReq,
    PingResp,
    Publish,
    Role,
)
from .session import Session

if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger("opendps.mqtt")
MAX_QUEUED = 64  # packets waiting for the session before reading pauses
MAX_PACKET = 128 * 1024  # 96 KB payloads plus topic and headers
CONNECT_TIMEOUT = 30.0  # a connection that never sends CONNECT holds nothing for long

SessionRouter = Callable[[Connect, "MqttEndpoint"], Session | None]


def _nothing(*_args: object) -> None:
    """What a closed endpoint writes with."""


class MqttEndpoint:
    def __init__(self, router: SessionRouter, write: Callable[[bytes], None],
                 close: Callable[[], None], *, peer: str = "?",
                 pause: Callable[[bool], None] | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 peer_chain: list[x509.Certificate] | None = None) -> None:
        self._router = router
        self._write = write
        self._close_transport = close
        self._pause = pause
        self.peer = peer
        # what the client presented in the TLS handshake, leaf first; empty without a certificate
        self.peer_chain: list[x509.Certificate] = peer_chain if peer_chain is not None else []
        self.conn = MqttConnection(Role.SERVER, max_packet_size=MAX_PACKET)
        self.session: Session | None = None
        # the session's synchronous path, if it has one (``Session`` explains)
        self._handle_now: Callable[[Packet], bool] | None = None
        # received packets waiting for the worker; a deque and one wake-up future rather than
        # an asyncio.Queue, whose loop checks and waiter bookkeeping cost more per packet
        self._queue: deque[Packet | ConnectionClosed] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        # asked for once: on Python 3.11 every ``asyncio.get_running_loop()`` (and so every
        # ``ensure_future`` or ``current_task()`` without a loop) is a ``getpid`` system call
        self._loop = loop = asyncio.get_running_loop()
        self._worker = loop.create_task(self._run())
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._transport_gone = False
        self.closed = False
        self._connect_deadline = loop.call_later(connect_timeout, self._no_connect)

    # -- from the transport ------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        self.conn.receive_data(data, self._loop.time())
        self._drain_events()
        self._arm_timer()

    def connection_lost(self) -> None:
        """Packets already received are still handled; then the worker sees the close."""
        self._transport_gone = True
        if self.closed:
            return
        try:
            self.conn.receive_data(b"")
        except LocalProtocolError:
            pass
        self._drain_events()
        if not self._queue and self.conn.state.name == "CLOSED":
            self._enqueue(ConnectionClosed("connection lost"))

    def _drain_events(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            if self._wakeup is not None and not self._queue and self._handled_now(event):
                if self.closed:
                    return
                continue
            self._enqueue(event)  # type: ignore[arg-type]
            if isinstance(event, ConnectionClosed):
                break
        if self._pause and not self._paused and len(self._queue) > MAX_QUEUED:
            self._paused = True
            self._pause(True)

    def _handled_now(self, event: object) -> bool:
        """While the worker is idle (waiting, nothing queued) no packet is unfinished, so one
        the session can finish at once (telemetry) is handed over here, in order, without the
        worker's wake-up and task step: that was a tenth of a telemetry message's cost."""
        handle_now = self._handle_now
        if handle_now is None or not isinstance(event, Publish):
            return False
        try:
            return handle_now(event)
        except Exception:
            log.exception("MQTT session from %s failed", self.peer)
            self.close("internal error")
            return True

    def _enqueue(self, event: Packet | ConnectionClosed) -> None:
        self._queue.append(event)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    def _arm_timer(self) -> None:
        """Every packet moves the keep-alive deadline later; rather than replace the timer each
        time (a cancel and a heap push per packet), let it fire early and re-arm then."""
        deadline = self.conn.get_timer()
        if self._timer is not None:
            if deadline is not None and self._timer.when() <= deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _no_connect(self) -> None:
        if self.session is None and not self.closed:
            log.info("MQTT peer %s sent no CONNECT in time", self.peer)
            self.close("no CONNECT in time")

    def _on_timer(self) -> None:
        self._timer = None
        self.conn.handle_timer(self._loop.time())
        self._drain_events()
        if not self.closed:
            self._arm_timer()  # the deadline moved on since the timer was set

    # -- the worker ------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            queue = self._queue
            while True:
                if not queue:
                    self._wakeup = self._loop.create_future()
                    await self._wakeup
                    continue
                event = queue.popleft()
                if self._paused and len(queue) < MAX_QUEUED // 2 and self._pause:
                    self._paused = False
                    self._pause(False)
                if isinstance(event, ConnectionClosed):
                    self._closed_by_peer(event)
                    return
                await self._handle(event)
                if self.closed:
                    return
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("MQTT session from %s failed", self.peer)
            self.close("internal error")

    def _closed_by_peer(self, event: ConnectionClosed) -> None:
        hint = event.error.connack_hint if event.error else None
        if hint is not None:
            self.send(ConnAck(False, int(hint)))
        if event.error:
            log.info("MQTT peer %s: %s", self.peer, event.reason)
        self.close(event.reason)

    async def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Connect):
            await self._connect(packet)
        elif isinstance(packet, PingReq):
            self.send(PingResp())
        elif isinstance(packet, Disconnect):
            self.close("client disconnected")
        elif self.session is not None:
            await self.session.on_packet(packet)

    async def _connect(self, packet: Connect) -> None:
        session = self._router(packet, self)
        if session is None:
            self.send(ConnAck(False, int(ConnAckCode.BAD_USERNAME_OR_PASSWORD)))
            self.close("CONNECT with an unrecognised username")
            return
        code = await session.on_connect(packet)
        self.send(ConnAck(False, code))
        if code != 0:
            self.close(f"CONNECT refused ({code})")
            return
        self.session = session
        self._handle_now = getattr(session, "handle_now", None)
        self._drain_events()  # packets pipelined behind CONNECT

    # -- Outbox for sessions --------------------------------------------------------------
    def send(self, packet: Packet) -> None:
        if self.closed or self._transport_gone:
            return
        try:
            self._write(self.conn.send(packet))
        except LocalProtocolError as exc:
            log.warning("not sending %s to %s: %s", type(packet).__name__, self.peer, exc)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        if self.closed:
            return
        packet_id = self.conn.next_packet_id() if qos else None
        self.send(Publish(topic, payload, qos, packet_id))

    def close(self, reason: str) -> None:
        if self.closed:
            return
        log.debug("closing MQTT connection from %s: %s", self.peer, reason)
        close_transport = self._close_transport
        self._finish()
        if not self._transport_gone:
            close_transport()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._connect_deadline.cancel()
        if self.session is not None:
            self.session.on_close()
        if asyncio.current_task(self._loop) is not self._worker:
            self._worker.cancel()
        # Break the cycles (session <-> endpoint <-> transport) so the connection is freed by
        # reference counting when it closes; left to the cyclic collector, thousands of dead
        # connections, with their TLS objects, were freed in one 50 ms pause now and then.
        self.session = None
        self._handle_now = None
        self._write = self._close_transport = _nothing
        self._pause = None
