"""The built-in hub's identity write for DPS: a device no registration record places in the
hub (``DeviceSpec.fresh``) is created without being read first; one that exists anyway keeps
its generation and gets the new keys, as on the read-first path."""

from __future__ import annotations

import base64

import pytest

from opendps.hub.builtin import BuiltinHub
from opendps.hub.bus import EventBus
from opendps.hub.connections import ConnectionTable
from opendps.provisioning.hub_port import DeviceSpec
from opendps.store import MemoryStore

HUB = "hub.example.net"
K1, K2, K3, K4 = (base64.b64encode(f"identity test key {n}".encode()).decode() for n in range(4))


@pytest.fixture
def hub_and_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[BuiltinHub, list[str]]:
    store = MemoryStore()
    reads: list[str] = []
    get_device = store.get_device

    async def counted(hub: str, device_id: str):  # type: ignore[no-untyped-def]
        reads.append(device_id)
        return await get_device(hub, device_id)

    monkeypatch.setattr(store, "get_device", counted)
    return BuiltinHub(store, HUB, EventBus(), ConnectionTable(), telemetry_keep=10), reads


async def test_a_fresh_device_is_created_without_a_read(hub_and_reads) -> None:  # type: ignore[no-untyped-def]
    hub, reads = hub_and_reads
    existed = await hub.create_or_update_device(
        DeviceSpec("d1", K1, K2, iot_edge=True, fresh=True))
    assert existed is False and reads == []
    stored = await hub.registry.store.add_device(HUB, "d1", {})  # taken
    assert stored is None
    device = (await hub.registry.get("d1")).doc
    assert device["authentication"]["symmetricKey"] == {"primaryKey": K1, "secondaryKey": K2}
    assert device["capabilities"] == {"iotEdge": True} and device["status"] == "enabled"


async def test_a_fresh_spec_for_an_existing_device_updates_it(hub_and_reads) -> None:  # type: ignore[no-untyped-def]
    hub, _ = hub_and_reads
    await hub.create_or_update_device(DeviceSpec("d2", K1, K2))
    first = (await hub.registry.get("d2")).doc
    existed = await hub.create_or_update_device(DeviceSpec("d2", K3, K4, fresh=True))
    again = (await hub.registry.get("d2")).doc
    assert existed is True and again["generationId"] == first["generationId"]
    assert again["authentication"]["symmetricKey"] == {"primaryKey": K3, "secondaryKey": K4}
