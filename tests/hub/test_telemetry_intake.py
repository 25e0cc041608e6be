"""Group-committed telemetry: concurrent messages share a transaction, a failed commit fails
every message in it, and the MQTT session pipelines a device's telemetry yet acknowledges it
in order and only once stored."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from opendps.hub.builtin import BuiltinHub
from opendps.hub.bus import EventBus, telemetry_channel
from opendps.hub.connections import ConnectionTable
from opendps.hub.telemetry import TelemetryClosed, TelemetryIntake
from opendps.protocol.hub_topics import HubUsername
from opendps.protocol.mqtt import Packet, PubAck, Publish
from opendps.store import EventItem, MemoryStore, StoreError, TelemetryEvent
from opendps.transport.hub_session import HubSession

HUB = "intake.local"


class CountingStore(MemoryStore):
    """Records every batch; fails the commits it is told to (nothing is stored then)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.committed: set[int] = set()
        self.fail_next = 0

    async def append_events(self, hub: str, items: Sequence[EventItem], *,
                            keep: int | None) -> list[TelemetryEvent]:
        await asyncio.sleep(0)  # a real commit suspends; the next batch gathers meanwhile
        self.batches.append([device_id for device_id, *_ in items])
        if self.fail_next:
            self.fail_next -= 1
            raise StoreError("disk full")
        events = await super().append_events(hub, items, keep=keep)
        self.committed.update(e.seq for e in events)
        return events


def intake(store: CountingStore, bus: EventBus | None = None) -> TelemetryIntake:
    return TelemetryIntake(store, HUB, bus or EventBus(), keep=1000)


async def stored(store: MemoryStore) -> list[TelemetryEvent]:
    return await store.events_after(HUB, 0, device_id=None, limit=1000)


async def test_concurrent_messages_share_one_commit_in_arrival_order() -> None:
    store, bus = CountingStore(), EventBus()
    published: list[tuple[int, bool]] = []  # (seq, committed yet?) as the bus sees it
    bus.subscribe(telemetry_channel(HUB),
                  lambda e: published.append((e.seq, e.seq in store.committed)))
    tel = intake(store, bus)
    sends = [(f"dev-{i % 10}", b"%d" % i) for i in range(50)]
    events = await asyncio.gather(*(tel.accept(d, body, {}, {"n": i})
                                    for i, (d, body) in enumerate(sends)))

    assert len(store.batches) < len(sends)  # group commit; a commit per message before
    assert sum(len(b) for b in store.batches) == len(sends)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)  # arrival order, hence each device's own order too
    assert [(e.device_id, e.body) for e in await stored(store)] == sends
    # the bus sees each event once, in seq order, and only after its commit
    assert published == [(seq, True) for seq in seqs]
    system = events[0].properties["system"]
    assert system["iothub-connection-device-id"] == "dev-0" and system["message-id"]


async def test_a_failed_commit_fails_every_message_in_it_and_the_next_batch_recovers() -> None:
    store, bus = CountingStore(), EventBus()
    seen: list[TelemetryEvent] = []
    bus.subscribe(telemetry_channel(HUB), seen.append)
    tel = intake(store, bus)
    store.fail_next = 1
    results = await asyncio.gather(*(tel.accept(f"d{i}", b"x", {}, {}) for i in range(8)),
                                   return_exceptions=True)
    assert len(store.batches) == 1
    assert all(isinstance(r, StoreError) for r in results)
    assert seen == [] and await stored(store) == []
    again = await tel.accept("d0", b"y", {}, {})
    assert [e.seq for e in await stored(store)] == [again.seq] and seen == [again]


async def test_batches_are_bounded_and_close_drains_what_is_queued() -> None:
    store = CountingStore()
    tel = TelemetryIntake(store, HUB, EventBus(), keep=1000, max_batch=4)
    pending = [tel.submit("d", b"%d" % i, {}, {}) for i in range(10)]
    await tel.close()
    assert [len(b) for b in store.batches] == [4, 4, 2]
    assert all(f.done() and not f.exception() for f in pending)
    assert [e.body for e in await stored(store)] == [b"%d" % i for i in range(10)]
    with pytest.raises(TelemetryClosed):
        await tel.accept("d", b"late", {}, {})


async def test_a_cancelled_writer_fails_what_it_held() -> None:
    store = CountingStore()
    tel = intake(store)
    pending = [tel.submit(f"d{i}", b"x", {}, {}) for i in range(3)]
    await asyncio.sleep(0)  # the writer starts its commit ...
    assert tel._writer is not None
    tel._writer.cancel()  # ... and is stopped (loop shutdown)
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(r, TelemetryClosed) for r in results)


class Outbox:
    def __init__(self) -> None:
        self.peer_chain: list[Any] = []
        self.sent: list[Packet] = []
        self.closed: str | None = None

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.sent.append(Publish(topic, payload, qos))

    def send(self, packet: Packet) -> None:
        if self.closed is None:
            self.sent.append(packet)

    def close(self, reason: str) -> None:
        self.closed = self.closed or reason


def session(store: CountingStore) -> tuple[HubSession, Outbox]:
    hub = BuiltinHub(store, HUB, EventBus(), ConnectionTable(), telemetry_keep=1000)
    out = Outbox()
    return HubSession(hub, HubUsername(HUB, "dev", None, {}), out), out


def telemetry(packet_id: int) -> Publish:
    return Publish("devices/dev/messages/events/", b"%d" % packet_id, 1, packet_id)


async def test_session_pipelines_telemetry_and_acks_in_order_after_storing() -> None:
    store = CountingStore()
    hs, out = session(store)
    for packet_id in range(1, 6):  # what the endpoint does: one packet after the other
        await hs.on_packet(telemetry(packet_id))
    assert out.sent == []  # nothing acknowledged before it is stored
    # a twin GET waits for the telemetry before it: its PUBACK comes after theirs
    await hs.on_packet(Publish("$iothub/twin/GET/?$rid=1", b"", 1, 6))
    assert store.batches == [["dev"] * 5]  # one commit, not one per message
    assert out.sent[:6] == [PubAck(i) for i in range(1, 7)]
    assert isinstance(out.sent[6], Publish) and out.sent[6].topic.startswith("$iothub/twin/res/200")
    assert [e.body for e in await stored(store)] == [b"%d" % i for i in range(1, 6)]


async def test_session_sends_no_puback_for_unstored_telemetry() -> None:
    store = CountingStore()
    hs, out = session(store)
    store.fail_next = 1
    for packet_id in (1, 2, 3):
        await hs.on_packet(telemetry(packet_id))
    await hs._settle()
    assert out.sent == [] and out.closed == "telemetry not stored"


async def test_the_log_is_trimmed_every_slack_events_not_every_batch() -> None:
    store = CountingStore()
    tel = TelemetryIntake(store, HUB, EventBus(), keep=1000)
    assert tel.slack == 100
    sizes = []
    for i in range(1400):  # one at a time: a batch per message
        await tel.accept("dev", b"%d" % i, {}, {})
        sizes.append(len(await store.events_after(HUB, 0, device_id=None, limit=2000)))
    # never more than keep + slack, trimmed back to keep on every hundredth message
    assert max(sizes) == 1000 + tel.slack - 1
    assert [i + 1 for i, size in enumerate(sizes) if size == 1000] == [1000, 1100, 1200, 1300,
                                                                        1400]
    newest = await store.events_after(HUB, 0, device_id=None, limit=2000)
    assert newest[-1].body == b"1399" and newest[0].body == b"400"
    await tel.close()


async def test_handle_now_submits_telemetry_within_the_in_flight_bound_only() -> None:
    from opendps.transport.hub_session import MAX_IN_FLIGHT

    store = CountingStore()
    hs, out = session(store)
    taken = [hs.handle_now(telemetry(i)) for i in range(1, MAX_IN_FLIGHT + 2)]
    # the last slot is left to on_packet, which waits for room instead
    assert taken == [True] * (MAX_IN_FLIGHT - 1) + [False, False]
    assert not hs.handle_now(Publish("$iothub/twin/GET/?$rid=1", b"", 1, 99))  # not telemetry
    await hs._settle()
    assert out.sent == [PubAck(i) for i in range(1, MAX_IN_FLIGHT)]
    assert store.batches == [["dev"] * (MAX_IN_FLIGHT - 1)]


async def test_handle_now_declines_once_a_message_was_lost() -> None:
    store = CountingStore()
    hs, out = session(store)
    store.fail_next = 1
    assert hs.handle_now(telemetry(1))
    await hs._settle()
    assert out.closed == "telemetry not stored"
    assert not hs.handle_now(telemetry(2)) and out.sent == []


async def test_messages_behind_a_running_writer_take_its_loop(
        loop_lookups: Counter[str]) -> None:
    """Only a message that starts the writer asks asyncio for the running loop (a ``getpid``
    system call on Python 3.11); the ones queued behind it use the writer's."""
    store = CountingStore()
    tel = intake(store)
    sent = [tel.submit(f"dev-{i % 5}", b"%d" % i, {}, {}) for i in range(50)]
    await asyncio.gather(*sent)
    assert loop_lookups == {"opendps.hub.telemetry.get_running_loop": 1}
    assert [e.body for e in await stored(store)] == [b"%d" % i for i in range(50)]
