"""The event bus across instances: local subscribers get events at once (as with ``EventBus``),
other instances get them through PostgreSQL ``pg_notify`` on one channel. A NOTIFY payload is
limited to 8000 bytes, so large desired patches and telemetry bodies travel as references that
receivers resolve from the store (the store is the truth; the bus only says "look")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from ..store.interface import Store, TelemetryEvent
from .bus import EventBus

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


class PgEventBus(EventBus):
    """``EventBus`` plus LISTEN/NOTIFY. Messages from this instance come back through LISTEN
    too; they carry ``instance_id`` and are ignored, since local delivery already happened."""

    def __init__(self, dsn: str, instance_id: str, store: Store) -> None:
        super().__init__()
        self.dsn = dsn
        self.instance_id = instance_id
        self.store = store
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING)
        self._listen: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.received = 0
        self.sent = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, wait: float = 10.0) -> None:
        """Start the listener and sender; wait (bounded) until LISTEN is in place."""
        self._tasks = [asyncio.ensure_future(self._listen_forever()),
                       asyncio.ensure_future(self._send_forever())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._listen is not None and not self._listen.is_closed():
            with contextlib.suppress(Exception):
                await self._listen.close()

    @property
    def ready(self) -> bool:
        """True while the LISTEN connection is up: events from other instances arrive."""
        return self._listening.is_set()

    # -- publishing -----------------------------------------------------------------------
    def publish(self, channel: str, event: Any) -> None:
        super().publish(channel, event)
        if channel == "telemetry:*":
            return  # receivers re-derive it from the per-hub channel (one NOTIFY per event)
        message = self._encode(channel, event)
        if message is None:
            return
        try:
            self._outgoing.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("bus: dropping a cross-instance event on %s (backlog full)", channel)

    def _encode(self, channel: str, event: Any) -> str | None:
        head = {"i": self.instance_id, "c": channel}
        if isinstance(event, TelemetryEvent):
            return json.dumps(dict(head, k="telemetry", seq=event.seq, hub=event.hub))
        try:
            text = json.dumps(dict(head, k="json", e=event), separators=(",", ":"))
        except (TypeError, ValueError):
            log.warning("bus: event on %s is not JSON; not sent to other instances", channel)
            return None
        if len(text.encode()) <= MAX_PAYLOAD:
            return text
        if channel.startswith("desired:") and isinstance(event, dict):
            return json.dumps(dict(head, k="twinref", v=event.get("$version")))
        log.warning("bus: event on %s is too large for NOTIFY; not sent", channel)
        return None

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
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("i") == self.instance_id:
            return
        self.received += 1
        kind, channel = message.get("k"), str(message.get("c", ""))
        if kind == "json":
            super().publish(channel, message.get("e"))
        elif channel in self._handlers or "telemetry:*" in self._handlers or kind == "twinref":
            task = asyncio.ensure_future(self._resolve(kind, channel, message))
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)

    async def _resolve(self, kind: Any, channel: str, message: dict[str, Any]) -> None:
        """Read what a reference points at, then deliver it locally."""
        try:
            if kind == "telemetry":
                hub, seq = str(message["hub"]), int(message["seq"])
                events = await self.store.events_after(hub, seq - 1, device_id=None, limit=1)
                if events and events[0].seq == seq:
                    super().publish(channel, events[0])
                    super().publish("telemetry:*", events[0])
            elif kind == "twinref" and channel in self._handlers:
                _, hub, device_id = channel.split(":", 2)
                hub = next((h.host_name for h in await self.store.list_hubs()
                            if h.host_name.lower() == hub), hub)
                stored = await self.store.get_twin(hub, device_id)
                if stored is not None:
                    desired = dict(stored.doc.get("desired", {}))
                    desired["$version"] = stored.doc.get("desiredVersion", message.get("v"))
                    super().publish(channel, desired)
        except Exception:
            log.exception("bus: cannot resolve a %s reference on %s", kind, channel)
