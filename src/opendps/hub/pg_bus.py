"""The event bus across cluster instances: ``RelayBus`` carried by PostgreSQL ``pg_notify`` on
one channel. A NOTIFY payload is limited to 8000 bytes, so larger events travel as references
(``RelayBus._encode``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from ..store.interface import Store
from .relay_bus import RelayBus, cancel_all

log = logging.getLogger("opendps.bus")
PG_CHANNEL = "opendps_bus"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes; keep a margin
MAX_PENDING = 10_000  # unsent notifications kept while the database is away
RECONNECT_MAX = 5.0


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (or any SQLAlchemy PostgreSQL URL) -> a libpq DSN."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


class PgEventBus(RelayBus):
    """``RelayBus`` over LISTEN/NOTIFY on one channel. Our own messages come back through
    LISTEN too; ``RelayBus`` ignores them by their ``instance_id``."""

    max_payload = MAX_PAYLOAD

    def __init__(self, dsn: str, instance_id: str, store: Store) -> None:
        super().__init__(instance_id, store)
        self.dsn = dsn
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING)
        self._listen: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, wait: float = 10.0) -> None:
        """Start the listener and sender; wait (bounded) until LISTEN is in place."""
        self._tasks = [asyncio.ensure_future(self._listen_forever()),
                       asyncio.ensure_future(self._send_forever())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait)

    async def close(self) -> None:
        self._closing = True
        await cancel_all(self._tasks)
        await super().close()
        if self._listen is not None and not self._listen.is_closed():
            with contextlib.suppress(Exception):
                await self._listen.close()

    @property
    def ready(self) -> bool:
        """True while the LISTEN connection is up: events from other instances arrive."""
        return self._listening.is_set()

    # -- sending --------------------------------------------------------------------------
    def _send(self, message: str) -> None:
        try:
            self._outgoing.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("bus: dropping a cross-instance event (NOTIFY backlog full)")

    async def _send_forever(self) -> None:
        conn: asyncpg.Connection | None = None
        delay = 0.2
        while True:
            message = await self._outgoing.get()
            while True:
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, timeout=5)
                    await conn.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, message)
                    self.sent += 1
                    delay = 0.2
                    break
                except asyncio.CancelledError:
                    if conn is not None:
                        conn.terminate()
                    raise
                except Exception as exc:  # the database went away: keep the message, retry
                    log.warning("bus: NOTIFY failed (%s); retrying in %.1fs", exc, delay)
                    if conn is not None:
                        conn.terminate()
                        conn = None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX)

    # -- receiving ------------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        delay = 0.2
        while not self._closing:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(PG_CHANNEL, self._on_notify)
                self._listen = conn
                self._listening.set()
                delay = 0.2
                log.info("bus: listening on PostgreSQL channel %s", PG_CHANNEL)
                while not lost.is_set():  # also notices a silently dead socket
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 5.0)
                    if not lost.is_set():
                        await conn.execute("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus: LISTEN connection failed (%s); reconnecting in %.1fs",
                            exc, delay)
            self._listening.clear()
            if self._listen is not None:
                self._listen.terminate()
                self._listen = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._receive(payload)
