"""A new device's twin is not stored until something writes it: reads show the unwritten
twin, and its first write is insert-only, so two first writers never lose each other's
change (every registration of a new device writes one row fewer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendps.hub.bus import EventBus
from opendps.hub.registry import DeviceRegistry
from opendps.hub.twins import UNWRITTEN_ETAG, TwinNotFound, TwinService
from opendps.protocol.hub_models import empty_twin
from opendps.store import MemoryStore, Store, open_store
from opendps.store.interface import EtagMismatch

HUB = "hub.example.net"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    opened = MemoryStore() if request.param == "memory" else await open_store(
        f"sqlite:///{tmp_path / 'db.sqlite'}")
    await DeviceRegistry(opened, HUB).put("d", {}, None)
    yield opened
    await opened.close()


async def test_a_new_device_has_an_unwritten_twin_and_no_row(store: Store) -> None:
    twins = TwinService(store, HUB, EventBus())
    assert await store.get_twin(HUB, "d") is None
    twin = await twins.get("d")
    assert twin is not None and twin.doc == empty_twin() and twin.etag == UNWRITTEN_ETAG
    assert await twins.get("nobody") is None
    with pytest.raises(TwinNotFound):
        await twins.patch_reported("nobody", {"a": 1})


async def test_if_match_holds_for_an_unwritten_twin(store: Store) -> None:
    twins = TwinService(store, HUB, EventBus())
    with pytest.raises(EtagMismatch):
        await twins.patch_desired("d", {"x": 1}, if_match="stale")
    written = await twins.patch_desired("d", {"x": 1}, if_match=UNWRITTEN_ETAG)
    assert written.etag != UNWRITTEN_ETAG
    assert (await twins.get("d")).doc["desired"] == {"x": 1}
    with pytest.raises(EtagMismatch):  # written now: the unwritten etag is stale
        await twins.patch_desired("d", {"y": 1}, if_match=UNWRITTEN_ETAG)


async def test_two_first_writers_both_land(store: Store, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """The device reports while the service sets desired properties, both on the unwritten
    twin: the one that loses the insert reads the winner's twin and writes again on it."""
    twins = TwinService(store, HUB, EventBus())
    add = store.add_twin

    async def racing(hub: str, device_id: str, doc: dict) -> object:
        monkeypatch.setattr(store, "add_twin", add)  # only the first attempt races
        await twins.patch_reported(device_id, {"battery": 80})  # the other writer, first
        return await add(hub, device_id, doc)

    monkeypatch.setattr(store, "add_twin", racing)
    await twins.patch_desired("d", {"interval": 5})
    doc = (await twins.get("d")).doc
    assert doc["reported"] == {"battery": 80} and doc["desired"] == {"interval": 5}
    assert doc["version"] == 3 and doc["desiredVersion"] == 2 and doc["reportedVersion"] == 2
