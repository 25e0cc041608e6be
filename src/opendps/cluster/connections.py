"""One hub connection per device across the cluster: attaching here tells every other
instance (over the bus) to drop the link it holds for the same device."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..hub.bus import EventBus
from ..hub.connections import ConnectionTable, DeviceLink

log = logging.getLogger("opendps.cluster")
REPLACED = "400027: a new connection for this device replaced this one"


def drop_channel(hub: str, device_id: str) -> str:
    return f"drop:{hub.lower()}:{device_id}"


class ClusterConnectionTable(ConnectionTable):
    """``ConnectionTable`` whose ``attach`` is announced on ``drop:{hub}:{device}``; each
    attached link listens on its own device's channel while it is attached."""

    def __init__(self, bus: EventBus, instance_id: str) -> None:
        super().__init__()
        self.bus = bus
        self.instance_id = instance_id
        self._stop: dict[tuple[str, str], Callable[[], None]] = {}

    def attach(self, hub: str, device_id: str, link: DeviceLink) -> None:
        super().attach(hub, device_id, link)
        key = (hub.lower(), device_id)
        channel = drop_channel(hub, device_id)
        if key not in self._stop:
            self._stop[key] = self.bus.subscribe(
                channel, lambda event: self._elsewhere(hub, device_id, event))
        self.bus.publish(channel, {"instance": self.instance_id})

    def detach(self, hub: str, device_id: str, link: DeviceLink) -> None:
        super().detach(hub, device_id, link)
        key = (hub.lower(), device_id)
        if key not in self._links and key in self._stop:
            self._stop.pop(key)()

    def _elsewhere(self, hub: str, device_id: str, event: Any) -> None:
        """Another instance accepted this device: drop ours (it detaches on close)."""
        if not isinstance(event, dict) or event.get("instance") == self.instance_id:
            return
        link = self._links.get((hub.lower(), device_id))
        if link is not None:
            log.info("device %s/%s connected on instance %s; dropping the link here",
                     hub, device_id, event.get("instance"))
            link.drop(REPLACED)
