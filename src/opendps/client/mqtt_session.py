"""One MQTT 3.1.1 client connection over TLS: the thin asyncio shell around the sans-I/O codec.

A single reader task feeds the codec and routes what comes out: CONNACK/SUBACK/PUBACK resolve
the future of whoever sent the matching packet, a PUBLISH goes to the first waiting request
whose predicate accepts it (else to ``inbox``). Server QoS 1 PUBLISHes are PUBACKed at once,
as the SDKs do. The DPS and hub device clients only say which topics to publish and await.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import TypeVar

from ..protocol.mqtt import (
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
    Packet,
    PingReq,
    PubAck,
    Publish,
    Role,
    SubAck,
    Subscribe,
)

DEFAULT_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE = 60
READ_SIZE = 65536

Matcher = Callable[[Publish], bool]
T = TypeVar("T")


class MqttError(Exception):
    """The MQTT conversation failed: refused, lost, or not answered in time."""


class ConnectRefused(MqttError):
    def __init__(self, return_code: int) -> None:
        try:
            name = ConnAckCode(return_code).name.lower().replace("_", " ")
        except ValueError:
            name = f"return code {return_code}"
        super().__init__(f"the server refused the MQTT connection ({name})")
        self.return_code = return_code


class ConnectionLost(MqttError):
    pass


class MqttSession:
    """Open with ``MqttSession.connect``; always ``close`` (or use ``async with``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 keep_alive: int = DEFAULT_KEEP_ALIVE,
                 response_timeout: float = DEFAULT_TIMEOUT) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = MqttConnection(Role.CLIENT)
        self._keep_alive = keep_alive
        self.response_timeout = response_timeout  # for every CONNACK, SUBACK, PUBACK, answer
        loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[ConnAck] = loop.create_future()
        self._pubacks: dict[int, asyncio.Future[PubAck]] = {}
        self._subacks: dict[int, asyncio.Future[SubAck]] = {}
        self._waiters: list[tuple[Matcher, asyncio.Future[Publish]]] = []
        self._next_sub_id = 0
        self.inbox: asyncio.Queue[Publish] = asyncio.Queue()
        self.closed_reason: str | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def connect(cls, host: str, port: int, ssl_context: ssl.SSLContext | None, *,
                      client_id: str, username: str | None, password: str | None,
                      keep_alive: int = DEFAULT_KEEP_ALIVE,
                      response_timeout: float = DEFAULT_TIMEOUT,
                      server_hostname: str | None = None) -> MqttSession:
        """TCP (+TLS, host name checked against ``server_hostname`` or ``host``), then CONNECT."""
        try:
            async with asyncio.timeout(response_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl_context,
                    server_hostname=(server_hostname or host) if ssl_context else None)
        except TimeoutError:
            raise TimeoutError(f"no TLS connection to {host}:{port} within "
                               f"{response_timeout:g} s") from None
        session = cls(reader, writer, keep_alive=keep_alive, response_timeout=response_timeout)
        session._tasks.append(asyncio.create_task(session._read_loop()))
        try:
            session._write(Connect(client_id=client_id, username=username,
                                   password=password.encode() if password is not None else None,
                                   keep_alive=keep_alive, clean_session=True))
            connack = await session._await(session._connack, "CONNACK")
            if connack.return_code != ConnAckCode.ACCEPTED:
                raise ConnectRefused(connack.return_code)
        except BaseException:
            await session.close()
            raise
        if keep_alive:
            session._tasks.append(asyncio.create_task(session._ping_loop()))
        return session

    async def __aenter__(self) -> MqttSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._conn.state is ConnectionState.CONNECTED

    # -- requests ----------------------------------------------------------------------------
    async def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        """Subscribe one filter; returns the granted QoS, raises MqttError if refused."""
        self._next_sub_id = self._next_sub_id % 0xFFFF + 1
        packet_id = self._next_sub_id
        future = asyncio.get_running_loop().create_future()
        self._subacks[packet_id] = future
        self._write(Subscribe(packet_id, ((topic_filter, qos),)))
        suback = await self._await(future, f"SUBACK for {topic_filter}")
        granted = suback.return_codes[0] if suback.return_codes else 0x80
        if granted == 0x80:
            raise MqttError(f"the server refused the subscription to {topic_filter}")
        return granted

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """QoS 1 returns once the server's PUBACK arrived; QoS 0 once written."""
        if qos == 0:
            self._write(Publish(topic, payload, 0))
            await self._drain()
            return
        packet_id = self._conn.next_packet_id()
        future = asyncio.get_running_loop().create_future()
        self._pubacks[packet_id] = future
        self._write(Publish(topic, payload, qos, packet_id))
        await self._drain()
        await self._await(future, f"PUBACK for {topic}")

    async def request(self, topic: str, payload: bytes, match: Matcher) -> Publish:
        """Publish (QoS 1) and return the first incoming PUBLISH ``match`` accepts."""
        future: asyncio.Future[Publish] = asyncio.get_running_loop().create_future()
        waiter = (match, future)
        self._waiters.append(waiter)  # before publishing: the answer may beat the PUBACK
        try:
            await self.publish(topic, payload, 1)
            return await self._await(future, f"response to {topic}")
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def close(self) -> None:
        """DISCONNECT if still connected, then close the socket and stop the tasks."""
        if self.connected:
            with contextlib.suppress(LocalProtocolError, OSError, ConnectionError):
                self._writer.write(self._conn.send(Disconnect()))
                await asyncio.wait_for(self._writer.drain(), 2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        self._finish(self.closed_reason or "closed by the client")

    # -- the shell ---------------------------------------------------------------------------
    def _write(self, packet: Packet) -> None:
        if self.closed_reason is not None:
            raise ConnectionLost(f"the MQTT connection is closed: {self.closed_reason}")
        try:
            self._writer.write(self._conn.send(packet))
        except LocalProtocolError as exc:
            raise ConnectionLost(f"cannot send {type(packet).__name__}: {exc}") from None

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (OSError, ConnectionError) as exc:
            raise ConnectionLost(f"the MQTT connection broke: {exc}") from None

    async def _await(self, future: asyncio.Future[T], what: str) -> T:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.response_timeout)
        except TimeoutError:
            raise TimeoutError(f"no {what} within {self.response_timeout:g} s") from None

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    data = await self._reader.read(READ_SIZE)
                except (OSError, ssl.SSLError) as exc:
                    self._finish(f"connection error: {exc}")
                    return
                self._conn.receive_data(data, loop.time())
                while True:
                    event = self._conn.next_event()
                    if event is NEED_DATA or event is PAUSED:
                        break
                    if isinstance(event, ConnectionClosed):
                        self._finish(event.reason)
                        return
                    self._dispatch(event)
        finally:
            self._finish(self.closed_reason or "reader stopped")

    def _dispatch(self, packet: Packet) -> None:
        if isinstance(packet, ConnAck):
            if not self._connack.done():
                self._connack.set_result(packet)
        elif isinstance(packet, PubAck):
            _resolve(self._pubacks.pop(packet.packet_id, None), packet)
        elif isinstance(packet, SubAck):
            _resolve(self._subacks.pop(packet.packet_id, None), packet)
        elif isinstance(packet, Publish):
            if packet.qos == 1 and packet.packet_id is not None:
                with contextlib.suppress(ConnectionLost):
                    self._write(PubAck(packet.packet_id))
            for match, future in self._waiters:
                if not future.done() and match(packet):
                    future.set_result(packet)
                    return
            self.inbox.put_nowait(packet)

    async def _ping_loop(self) -> None:
        """PINGREQ at three quarters of the keep-alive; the answer needs no handling."""
        interval = max(1.0, self._keep_alive * 0.75)
        while self.closed_reason is None:
            await asyncio.sleep(interval)
            with contextlib.suppress(ConnectionLost, OSError, ConnectionError):
                self._write(PingReq())
                await self._writer.drain()

    def _finish(self, reason: str) -> None:
        """Fail every pending future: nobody waits forever on a dead connection."""
        if self.closed_reason is None:
            self.closed_reason = reason
        error = ConnectionLost(f"the MQTT connection closed: {self.closed_reason}")
        pending: list[asyncio.Future] = [self._connack, *self._pubacks.values(),
                                         *self._subacks.values(),
                                         *(f for _, f in self._waiters)]
        self._pubacks.clear()
        self._subacks.clear()
        for future in pending:
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: no "never retrieved" noise


def _resolve(future: asyncio.Future | None, value: object) -> None:
    if future is not None and not future.done():
        future.set_result(value)
