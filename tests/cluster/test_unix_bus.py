"""The workers' bus (unix datagrams) and the parent-to-worker contract, without a server."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opendps import config
from opendps.cluster.worker import ENV, WorkerSlot, from_env
from opendps.hub.unix_bus import MAX_PAYLOAD, UnixEventBus
from opendps.store.interface import TelemetryEvent

from .test_units import _Store


@pytest.fixture
async def pair() -> AsyncIterator[tuple[UnixEventBus, UnixEventBus, Path]]:
    with tempfile.TemporaryDirectory(prefix="bus-") as tmp:
        run = Path(tmp)
        slot = WorkerSlot(0, 2, run)
        a = UnixEventBus(slot.socket_path(0), [slot.socket_path(1)], "a", _Store())  # type: ignore[arg-type]
        b = UnixEventBus(slot.socket_path(1), [slot.socket_path(0)], "b", _Store())  # type: ignore[arg-type]
        await a.start()
        await b.start()
        try:
            yield a, b, run
        finally:
            await a.close()
            await b.close()


async def test_events_reach_the_other_worker(pair: tuple[UnixEventBus, UnixEventBus, Path]) -> None:
    a, b, _ = pair
    assert a.ready and b.ready
    on_a, _stop_a = a.queue("desired:h:d")
    on_b, _stop_b = b.queue("desired:h:d")
    a.publish("desired:h:d", {"small": 1, "$version": 2})
    assert on_a.get_nowait() == {"small": 1, "$version": 2}  # local delivery: at once
    assert await asyncio.wait_for(on_b.get(), 2) == {"small": 1, "$version": 2}
    # over the datagram limit: a reference, resolved from the store by the receiver
    a.publish("desired:h:d", {"big": "x" * (MAX_PAYLOAD + 1), "$version": 7})
    received = await asyncio.wait_for(on_b.get(), 2)
    assert received["$version"] == 7 and len(received["big"]) == 10_000  # the store's twin
    # far larger than NOTIFY allows, still inline
    a.publish("desired:h:d", {"mid": "y" * 20_000, "$version": 8})
    assert (await asyncio.wait_for(on_b.get(), 2))["mid"] == "y" * 20_000
    await asyncio.sleep(0.05)
    assert on_a.qsize() == 2  # nothing came back to the sender


async def test_a_full_receiver_queue_keeps_order(
        pair: tuple[UnixEventBus, UnixEventBus, Path]) -> None:
    """The kernel queues ~10 datagrams per unix socket: the rest wait in the sender, in order."""
    a, b, _ = pair
    on_b, _stop = b.queue("cache")
    for n in range(500):
        a.publish("cache", n)
    got = [await asyncio.wait_for(on_b.get(), 2) for _ in range(500)]
    assert got == list(range(500))


async def test_a_missing_or_restarted_peer(pair: tuple[UnixEventBus, UnixEventBus, Path]) -> None:
    """Messages to a worker that is not running go nowhere (and raise nothing); once it is
    back on the same path, it hears the next ones."""
    a, b, run = pair
    await b.close()
    a.publish("cache", "lost")
    derived = TelemetryEvent(1, "h", "d", datetime.now(UTC), b"", {})
    a.publish("telemetry:*", derived)  # derived from telemetry:h by receivers: never sent
    again = UnixEventBus(b.own, [a.own], "b2", _Store())  # type: ignore[arg-type]
    await again.start()
    try:
        on_again, _stop = again.queue("cache")
        a.publish("cache", "heard")
        assert await asyncio.wait_for(on_again.get(), 2) == "heard"
        assert on_again.empty()
    finally:
        await again.close()
    assert not (run / "w1.sock").exists()  # a closed bus removes its socket


def test_worker_slot_round_trip(tmp_path: Path) -> None:
    settings = config.load({"data_dir": str(tmp_path), "workers": 2,
                            "hub_host_names": ("a.example", "b.example")}, env={})
    slot = WorkerSlot(1, 2, tmp_path / "run", ready_fd=5, lifeline_fd=6)
    got = from_env({ENV: slot.encode(settings)})
    assert got == (slot, settings)
    assert from_env({}) is None
    assert slot.peer_paths() == [tmp_path / "run" / "w0.sock"]


def test_workers_setting() -> None:
    assert config.load(env={"OPENDPS_WORKERS": "2"}).workers == 2
    assert config.load(env={}).workers == 1
    with pytest.raises(config.ConfigError):
        config.load({"workers": 0}, env={})
    with pytest.raises(config.ConfigError):
        config.load({"workers": 2, "https_port": 0}, env={})


async def test_the_worker_notices_its_parent_is_gone() -> None:
    read, write = os.pipe()
    gone = asyncio.Event()
    WorkerSlot(0, 2, Path("/nonexistent"), lifeline_fd=read).watch_parent(gone.set)
    await asyncio.sleep(0.05)
    assert not gone.is_set()
    os.close(write)  # what the kernel does when the parent dies, even by kill -9
    await asyncio.wait_for(gone.wait(), 2)
    os.close(read)


class _TelemetryStore(_Store):
    """Holds telemetry of two hubs, interleaved, as the global seq makes it."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.events = [TelemetryEvent(seq, "h" if seq % 3 else "other", "d", now,
                                      b"%d" % seq, {}) for seq in range(1, 40)]
        self.reads = 0

    async def events_after(self, hub: str | None, seq: int, *, device_id: str | None,
                           limit: int) -> list[TelemetryEvent]:
        self.reads += 1
        found = [e for e in self.events if e.seq > seq and (hub is None or e.hub == hub)]
        return found[:limit]


async def test_a_telemetry_batch_travels_as_one_reference() -> None:
    with tempfile.TemporaryDirectory(prefix="bus-") as tmp:
        slot = WorkerSlot(0, 2, Path(tmp))
        store = _TelemetryStore()
        a = UnixEventBus(slot.socket_path(0), [slot.socket_path(1)], "a", store)  # type: ignore[arg-type]
        b = UnixEventBus(slot.socket_path(1), [slot.socket_path(0)], "b", store)  # type: ignore[arg-type]
        await a.start()
        await b.start()
        try:
            on_b, _stop = b.queue("telemetry:h")
            everything, _stop_all = b.queue("telemetry:*")
            batch = [e for e in store.events if e.hub == "h"][:20]
            for event in batch:  # one group commit's events, published in one go
                a.publish("telemetry:h", event)
            got = [await asyncio.wait_for(on_b.get(), 2) for _ in batch]
            assert [e.seq for e in got] == [e.seq for e in batch]  # in order, no other hub's
            assert [everything.get_nowait().seq for _ in batch] == [e.seq for e in batch]
            await asyncio.sleep(0.05)
            assert on_b.empty()
            assert b.received == 1 and store.reads <= 2  # one message, one range read
        finally:
            await a.close()
            await b.close()
