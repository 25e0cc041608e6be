"""Who is connected: one live MQTT connection per device; a new one drops the old."""

from __future__ import annotations

from typing import Protocol


class DeviceLink(Protocol):
    def drop(self, reason: str) -> None: ...


class ConnectionTable:
    def __init__(self) -> None:
        self._links: dict[tuple[str, str], DeviceLink] = {}

    def attach(self, hub: str, device_id: str, link: DeviceLink) -> None:
        key = (hub.lower(), device_id)
        old = self._links.get(key)
        self._links[key] = link
        if old is not None and old is not link:
            old.drop("400027: a new connection for this device replaced this one")

    def detach(self, hub: str, device_id: str, link: DeviceLink) -> None:
        key = (hub.lower(), device_id)
        if self._links.get(key) is link:
            del self._links[key]

    def is_connected(self, hub: str, device_id: str) -> bool:
        return (hub.lower(), device_id) in self._links

    def count(self) -> int:
        return len(self._links)
