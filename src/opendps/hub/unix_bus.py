"""The event bus between the worker processes of one server (``serve --workers N`` on SQLite):
``RelayBus`` carried by unix datagrams. Each worker binds one socket in the server's run
directory and sends every message to each other worker's socket: no broker, no database
round trip, and the directory's permissions keep other local users out.

A datagram is delivered whole or not at all, and a unix datagram socket on Linux queues only
``net.unix.max_dgram_qlen`` of them (10 by default) at the receiver; a sender that finds the
queue full keeps its messages, in order, and waits until the receiver has room. A worker that
is not running (not started yet, or being restarted) misses what is sent meanwhile: it starts
with empty caches and no device connections, so it has nothing those messages would correct."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from pathlib import Path

from ..store.interface import Store
from .relay_bus import RelayBus

log = logging.getLogger("opendps.bus")
# Far above NOTIFY's 8000 bytes, below the default socket send buffer (~208 KiB); a larger
# desired patch travels as a reference, as on PostgreSQL.
MAX_PAYLOAD = 60_000
MAX_PENDING = 10_000  # messages kept for one peer whose queue is full; the oldest go first
READ_BATCH = 256  # datagrams read per wake-up before other callbacks get the loop


class _Peer:
    """One other worker: a datagram socket connected to its path (so the kernel can say when
    its queue has room again) and the messages waiting for that."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self.loop = loop
        self.sock: socket.socket | None = None
        self.pending: deque[bytes] = deque()
        self._watched: int | None = None  # fd with a writer callback

    def send(self, data: bytes) -> bool:
        """Send or queue; False when the message went nowhere (the peer is not running)."""
        if self.pending:  # keep the order: behind what already waits
            self._queue(data)
            return True
        sent = self._send_now(data)
        if sent is None:
            self._queue(data)
            self._watch()
            return True
        return sent

    def _send_now(self, data: bytes) -> bool | None:
        """True when sent, False when the peer is not there (dropped), None when full."""
        for _attempt in range(2):  # a restarted peer has a new socket: reconnect once
            if self.sock is None and not self._connect():
                return False
            assert self.sock is not None
            try:
                self.sock.send(data)
                return True
            except BlockingIOError:
                return None
            except OSError:
                self._disconnect()
        return False

    def _connect(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            return False
        self.sock = sock
        return True

    def _disconnect(self) -> None:
        self._unwatch()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _queue(self, data: bytes) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.pending.popleft()
            log.warning("bus: worker socket %s is not reading; dropping its oldest message",
                        self.path.name)
        self.pending.append(data)

    def _watch(self) -> None:
        if self.sock is not None and self._watched != self.sock.fileno():
            self._unwatch()
            self._watched = self.sock.fileno()
            self.loop.add_writer(self._watched, self._flush)

    def _unwatch(self) -> None:
        if self._watched is not None:
            self.loop.remove_writer(self._watched)
            self._watched = None

    def _flush(self) -> None:
        """The peer has room again: send what waits, in order, until it is full again."""
        while self.pending:
            sent = self._send_now(self.pending[0])
            if sent is None:
                self._watch()  # possibly a new socket after a reconnect
                return
            if sent is False:  # the peer went away: nobody to tell
                self.pending.clear()
                break
            self.pending.popleft()
        self._unwatch()

    def close(self) -> None:
        self._disconnect()
        self.pending.clear()


class UnixEventBus(RelayBus):
    """``RelayBus`` over unix datagrams: ``own`` is this worker's socket path, ``peers`` the
    other workers' (they need not exist yet)."""

    max_payload = MAX_PAYLOAD

    def __init__(self, own: Path, peers: list[Path], instance_id: str, store: Store) -> None:
        super().__init__(instance_id, store)
        self.own = own
        self.peer_paths = list(peers)
        self._sock: socket.socket | None = None
        self._peers: list[_Peer] = []

    async def start(self) -> None:
        """Bind this worker's socket (replacing a dead predecessor's) and start reading."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.own)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.bind(str(self.own))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._peers = [_Peer(path, loop) for path in self.peer_paths]
        loop.add_reader(sock.fileno(), self._readable)

    @property
    def ready(self) -> bool:
        return self._sock is not None

    async def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                os.unlink(self.own)
        for peer in self._peers:
            peer.close()
        await super().close()

    def _send(self, message: str) -> None:
        data = message.encode()
        for peer in self._peers:
            if peer.send(data):
                self.sent += 1

    def _readable(self) -> None:
        assert self._sock is not None
        for _ in range(READ_BATCH):
            try:
                data = self._sock.recv(MAX_PAYLOAD + 1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("bus: reading the worker socket failed (%s)", exc)
                return
            self._receive(data)
