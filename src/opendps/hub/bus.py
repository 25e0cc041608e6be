"""In-process event fan-out. Across processes the same interface rides on a carrier
(``relay_bus.py``): PostgreSQL LISTEN/NOTIFY in a cluster, unix datagrams between the workers
of ``serve --workers N`` on SQLite (ARCHITECTURE: scale-out); subscribers never know which."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        self._handlers[channel].append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers.get(channel)
            if handlers and handler in handlers:
                handlers.remove(handler)
                if not handlers:
                    del self._handlers[channel]

        return unsubscribe

    def publish(self, channel: str, event: Any) -> None:
        for handler in list(self._handlers.get(channel, ())):
            handler(event)

    def queue(self, channel: str,
              maxsize: int = 10_000) -> tuple[asyncio.Queue, Callable[[], None]]:
        """A bounded queue fed by the channel; the oldest event is dropped when full."""
        q: asyncio.Queue = asyncio.Queue(maxsize)

        def put(event: Any) -> None:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

        return q, self.subscribe(channel, put)


def desired_channel(hub: str, device_id: str) -> str:
    return f"desired:{hub.lower()}:{device_id}"


def telemetry_channel(hub: str) -> str:
    return f"telemetry:{hub.lower()}"
