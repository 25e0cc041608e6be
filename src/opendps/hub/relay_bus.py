"""The event bus across processes, whatever carries the bytes. Local subscribers get events at
once (as with ``EventBus``); every other process gets one JSON message per event (telemetry:
one per batch) through the subclass's ``_send`` and hands what arrives to ``_receive``. A
carrier limits message size, so large desired patches and telemetry bodies travel as
references that receivers resolve from the store (the store is the truth; the bus only says
"look"). The carriers: PostgreSQL LISTEN/NOTIFY between cluster instances (``pg_bus.py``) and
unix datagrams between the worker processes of one server on SQLite (``unix_bus.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from ..store.interface import Store, TelemetryEvent
from .bus import EventBus

log = logging.getLogger("opendps.bus")


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel the tasks and wait until each has finished, whatever it raised."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class RelayBus(EventBus):
    """``EventBus`` that also relays every event (except the derived ``telemetry:*``) to the
    other processes. Messages carry ``instance_id``; one that comes back to its sender is
    ignored, since local delivery already happened. Telemetry goes as one reference to a range
    of seqs per loop iteration, which the receivers read back from the store."""

    max_payload = 7900  # bytes of one encoded message; subclasses set their carrier's limit

    def __init__(self, instance_id: str, store: Store) -> None:
        super().__init__()
        self.instance_id = instance_id
        self.store = store
        self._resolving: set[asyncio.Task[None]] = set()
        # telemetry references wait here until the end of the loop iteration, then go as one
        # message per channel: a group commit publishes a batch at once (see TelemetryIntake)
        self._telemetry: dict[str, list[int]] = {}  # channel -> [hub..., first seq, last seq]
        self._telemetry_hub: dict[str, str] = {}
        self._flush_scheduled = False
        self.received = 0
        self.sent = 0

    def _send(self, message: str) -> None:
        """Hand one encoded message to the carrier; never blocks, never raises."""
        raise NotImplementedError

    async def close(self) -> None:
        await cancel_all(self._resolving)

    # -- publishing -----------------------------------------------------------------------
    def publish(self, channel: str, event: Any) -> None:
        super().publish(channel, event)
        if channel == "telemetry:*":
            return  # receivers re-derive it from the per-hub channel
        if isinstance(event, TelemetryEvent):
            self._defer_telemetry(channel, event)
            return
        message = self._encode(channel, event)
        if message is not None:
            self._send(message)

    def _defer_telemetry(self, channel: str, event: TelemetryEvent) -> None:
        """One reference per batch, not per event: "seqs ``from``..``seq`` of this hub"."""
        span = self._telemetry.get(channel)
        if span is None:
            self._telemetry[channel] = [event.seq, event.seq]
            self._telemetry_hub[channel] = event.hub
        else:
            span[0], span[1] = min(span[0], event.seq), max(span[1], event.seq)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_telemetry)

    def _flush_telemetry(self) -> None:
        self._flush_scheduled = False
        spans, hubs = self._telemetry, self._telemetry_hub
        self._telemetry, self._telemetry_hub = {}, {}
        for channel, (first, last) in spans.items():
            self._send(json.dumps({"i": self.instance_id, "c": channel, "k": "telemetry",
                                   "hub": hubs[channel], "from": first, "seq": last}))

    def _encode(self, channel: str, event: Any) -> str | None:
        head = {"i": self.instance_id, "c": channel}
        try:
            text = json.dumps(dict(head, k="json", e=event), separators=(",", ":"))
        except (TypeError, ValueError):
            log.warning("bus: event on %s is not JSON; not sent to other instances", channel)
            return None
        if len(text.encode()) <= self.max_payload:
            return text
        if channel.startswith("desired:") and isinstance(event, dict):
            return json.dumps(dict(head, k="twinref", v=event.get("$version")))
        log.warning("bus: event on %s is too large for the bus; not sent", channel)
        return None

    # -- receiving ------------------------------------------------------------------------
    def _receive(self, payload: str | bytes) -> None:
        """One message from another process: deliver it locally, resolving references."""
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
            self._resolving.add(task)
            task.add_done_callback(self._resolving.discard)

    async def _resolve(self, kind: Any, channel: str, message: dict[str, Any]) -> None:
        """Read what a reference points at, then deliver it locally."""
        try:
            if kind == "telemetry":
                hub, last = str(message["hub"]), int(message["seq"])
                after = int(message.get("from", last)) - 1
                while after < last:  # seqs are global: other hubs' may sit in between
                    events = await self.store.events_after(
                        hub, after, device_id=None, limit=min(last - after, 1000))
                    for event in events:
                        if event.seq > last:
                            return
                        super().publish(channel, event)
                        super().publish("telemetry:*", event)
                    if not events:
                        return
                    after = events[-1].seq
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
