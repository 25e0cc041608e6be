"""Telemetry intake: keep a bounded log per hub and fan each event out live.

Messages are group-committed: each one joins a queue and its sender waits for a future; one
writer stores everything queued in a single ``append_events`` call (one transaction, one trim),
then resolves the futures. A commit costs far more than a row, so while one batch commits the
next accumulates, and the rate grows with the number of senders instead of being one message
per commit. Nothing is acknowledged before its batch is committed: a failed commit fails every
message in it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..protocol.ids import guid
from ..protocol.timefmt import format_utc, utc_now
from ..store.interface import Store, TelemetryEvent
from .bus import EventBus, telemetry_channel

log = logging.getLogger("opendps.hub.telemetry")
MAX_BATCH = 500  # messages per transaction; bounds the time one commit holds the writer


class TelemetryClosed(RuntimeError):
    """The intake was closed before the message was stored."""


def event_json(event: TelemetryEvent) -> dict[str, Any]:
    """The shape ``opendps hub monitor-events`` prints, like ``az iot hub monitor-events``."""
    try:
        payload: Any = event.body.decode("utf-8")
    except UnicodeDecodeError:
        payload = event.body.hex()
    return {
        "seq": event.seq,
        "hub": event.hub,
        "origin": event.device_id,
        "enqueuedTimeUtc": format_utc(event.enqueued),
        "payload": payload,
        "properties": event.properties,
    }


@dataclass(slots=True)
class _Pending:
    device_id: str
    enqueued: datetime
    body: bytes
    properties: dict[str, Any]
    done: asyncio.Future[TelemetryEvent]


class TelemetryIntake:
    def __init__(self, store: Store, host_name: str, bus: EventBus, *, keep: int,
                 max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.host_name = host_name
        self.bus = bus
        self.keep = keep
        self.max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        # Trimming walks ``keep`` index entries (about 0.3 ms for 10,000), so it runs once
        # ``slack`` events have arrived since the last one, not on every batch: the log holds
        # the newest ``keep`` events, and at most ``slack`` plus one batch more between trims.
        # A tenth of ``keep``: at a hundredth, the walks were 5 % of a message's server CPU.
        self.slack = max(1, keep // 10)
        self._since_trim = 0
        # runs only while messages are queued, so an idle hub holds no task to stop
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def accept(self, device_id: str, body: bytes, system: dict[str, str],
                     application: dict[str, Any]) -> TelemetryEvent:
        """Store one message; returns once it is committed (raises if it was not)."""
        return await self.submit(device_id, body, system, application)

    def submit(self, device_id: str, body: bytes, system: dict[str, str],
               application: dict[str, Any]) -> asyncio.Future[TelemetryEvent]:
        """Queue one message; the future resolves once it is committed. Messages are stored
        in submission order, so a device's seqs increase in the order it sent them."""
        # the running writer's loop when there is one: on Python 3.11 each
        # ``get_running_loop()`` is a ``getpid`` system call, and under load it always runs
        writer = self._writer
        loop = writer.get_loop() if writer is not None else asyncio.get_running_loop()
        done: asyncio.Future[TelemetryEvent] = loop.create_future()
        if self._closed:
            done.set_exception(TelemetryClosed(f"telemetry intake of {self.host_name} closed"))
            return done
        now = utc_now()
        system = dict(system)
        system.setdefault("message-id", guid())
        system["iothub-connection-device-id"] = device_id
        system["iothub-enqueuedtime"] = format_utc(now)
        system["iothub-message-source"] = "Telemetry"
        self._queue.append(_Pending(device_id, now, body,
                                    {"system": system, "application": application}, done))
        if self._writer is None:
            self._writer = loop.create_task(self._write())
        return done

    async def close(self) -> None:
        """Refuse new messages and wait until the queued ones are stored (or have failed)."""
        self._closed = True
        if self._writer is not None:
            await asyncio.wait([self._writer])

    async def _write(self) -> None:
        """Store what is queued, a batch per transaction, until the queue is empty; whatever
        arrives during a commit goes into the next batch."""
        batch: list[_Pending] = []
        try:
            while self._queue:
                count = min(len(self._queue), self.max_batch)
                batch = [self._queue.popleft() for _ in range(count)]
                self._since_trim += len(batch)
                trim = self._since_trim >= self.slack
                try:
                    events = await self.store.append_events(
                        self.host_name,
                        [(p.device_id, p.enqueued, p.body, p.properties) for p in batch],
                        keep=self.keep if trim else None)
                    if trim:
                        self._since_trim = 0
                except Exception as exc:
                    log.warning("telemetry: storing %d message(s) for %s failed: %s",
                                len(batch), self.host_name, exc)
                    _fail(batch, exc)
                else:
                    self._deliver(batch, events)
                batch = []
        except BaseException as exc:  # cancelled (or a bug): nothing queued may wait for ever
            _fail(batch, exc)
            _fail(self._queue, exc)
            self._queue.clear()
            raise
        finally:
            self._writer = None

    def _deliver(self, batch: list[_Pending], events: list[TelemetryEvent]) -> None:
        """Publish on the bus in seq order, after the commit, then release the senders."""
        channel = telemetry_channel(self.host_name)
        for pending, event in zip(batch, events, strict=True):
            try:
                self.bus.publish(channel, event)
                self.bus.publish("telemetry:*", event)
            except Exception:  # stored is stored: a broken subscriber must not un-ack it
                log.exception("telemetry: a subscriber failed on event %d", event.seq)
            if not pending.done.done():  # the sender may have given up (connection gone)
                pending.done.set_result(event)


def _fail(batch: Iterable[_Pending], exc: BaseException) -> None:
    if not isinstance(exc, Exception):  # a cancelled writer: the senders' tasks go on
        exc = TelemetryClosed("telemetry writer stopped before storing the message")
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(exc)
