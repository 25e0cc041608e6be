"""The DPS engine's view of its linked hubs: built-in ones are called in process, external
ones (Azure IoT Hub or another opendps) over the IoT Hub registry REST API. Part of the
composition root, because it knows both kinds."""

from __future__ import annotations

from dataclasses import dataclass, field

from .hub.builtin import BuiltinHub
from .hub.external import ExternalHub
from .provisioning.hub_port import HubPort
from .store.interface import HubRecord, Store


@dataclass
class LinkedHubs:
    store: Store
    builtin: dict[str, BuiltinHub] = field(default_factory=dict)  # shared with the front ends
    ca_file: str | None = None  # trust root for external hubs' TLS (None: system store)
    _external: dict[str, tuple[str, ExternalHub]] = field(default_factory=dict)

    async def linked(self) -> list[HubRecord]:
        records = await self.store.list_hubs()
        for record in records:
            if not record.built_in and record.connection_string:
                self._external_for(record)
        return records

    def _external_for(self, record: HubRecord) -> ExternalHub:
        key = record.host_name.lower()
        cached = self._external.get(key)
        if cached is None or cached[0] != record.connection_string:
            hub = ExternalHub(record.connection_string or "", ca_file=self.ca_file)
            self._external[key] = (record.connection_string or "", hub)
            return hub
        return cached[1]

    def port(self, host_name: str) -> HubPort | None:
        key = host_name.lower()
        if key in self.builtin:
            return self.builtin[key]
        cached = self._external.get(key)
        return cached[1] if cached else None

    async def close(self) -> None:
        """At shutdown, before the store closes: built-in hubs store their queued telemetry."""
        for builtin in list(self.builtin.values()):
            await builtin.close()
        for _, hub in self._external.values():
            await hub.close()
        self._external.clear()
