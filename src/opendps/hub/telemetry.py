"""Telemetry intake: keep a bounded log per hub and fan each event out live."""

from __future__ import annotations

import uuid
from typing import Any

from ..protocol.timefmt import format_utc, utc_now
from ..store.interface import Store, TelemetryEvent
from .bus import EventBus, telemetry_channel


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


class TelemetryIntake:
    def __init__(self, store: Store, host_name: str, bus: EventBus, *, keep: int) -> None:
        self.store = store
        self.host_name = host_name
        self.bus = bus
        self.keep = keep

    async def accept(self, device_id: str, body: bytes, system: dict[str, str],
                     application: dict[str, Any]) -> TelemetryEvent:
        now = utc_now()
        system = dict(system)
        system.setdefault("message-id", str(uuid.uuid4()))
        system["iothub-connection-device-id"] = device_id
        system["iothub-enqueuedtime"] = format_utc(now)
        system["iothub-message-source"] = "Telemetry"
        event = await self.store.append_event(
            self.host_name, device_id, now, body,
            {"system": system, "application": application}, keep=self.keep)
        self.bus.publish(telemetry_channel(self.host_name), event)
        self.bus.publish("telemetry:*", event)
        return event
