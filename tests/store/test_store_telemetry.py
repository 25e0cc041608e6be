"""Contract: the telemetry log — ordering, filters, trimming, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from opendps.store import Store

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


async def test_append_and_read_back(store: Store) -> None:
    assert await store.last_event_seq() == 0
    assert await store.events_after(None, 0, device_id=None, limit=10) == []
    plus2 = timezone(timedelta(hours=2))
    body = bytes(range(256))
    props = {"system": {"content-type": "application/json"}, "application": {"k": "v"}}
    event = await store.append_event(
        "h1", "d1", T0.astimezone(plus2), body, props, keep=100
    )
    assert event.enqueued == T0 and event.enqueued.utcoffset() == timedelta(0)
    assert event.body == body and event.properties == props
    (back,) = await store.events_after("h1", 0, device_id=None, limit=10)
    assert back == event
    assert back.enqueued.tzinfo is not None and back.enqueued.microsecond == 123456
    assert await store.last_event_seq() == event.seq


async def test_order_and_filters(store: Store) -> None:
    plan = [("h1", "a"), ("h2", "a"), ("h1", "b"), ("h1", "a"), ("h2", "b")]
    seqs = [
        (await store.append_event(h, d, T0, b"x", {}, keep=100)).seq for h, d in plan
    ]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    every = await store.events_after(None, 0, device_id=None, limit=100)
    assert [(e.hub, e.device_id) for e in every] == plan
    h1 = await store.events_after("h1", 0, device_id=None, limit=100)
    assert [e.seq for e in h1] == [seqs[0], seqs[2], seqs[3]]
    h1a = await store.events_after("h1", seqs[0], device_id="a", limit=100)
    assert [e.seq for e in h1a] == [seqs[3]]
    any_b = await store.events_after(None, 0, device_id="b", limit=100)
    assert [e.seq for e in any_b] == [seqs[2], seqs[4]]
    limited = await store.events_after(None, seqs[0], device_id=None, limit=2)
    assert [e.seq for e in limited] == seqs[1:3]
    assert await store.last_event_seq() == seqs[-1]
    with pytest.raises(ValueError):
        await store.events_after(None, 0, device_id=None, limit=0)


async def test_trimming_keeps_exactly_newest(store: Store) -> None:
    kept_b: list[int] = []
    appended_a: list[int] = []
    for i in range(12):
        appended_a.append((await store.append_event("a", "d", T0, b"%d" % i, {}, keep=4)).seq)
        if i % 3 == 0:
            kept_b.append((await store.append_event("b", "d", T0, b"b", {}, keep=100)).seq)
    a_events = await store.events_after("a", 0, device_id=None, limit=100)
    assert [e.seq for e in a_events] == appended_a[-4:]
    assert [e.body for e in a_events] == [b"8", b"9", b"10", b"11"]
    b_events = await store.events_after("b", 0, device_id=None, limit=100)
    assert [e.seq for e in b_events] == kept_b  # other hubs untouched
    # seqs keep growing after trimming; never reused
    nxt = await store.append_event("a", "d", T0, b"", {}, keep=1)
    assert nxt.seq > appended_a[-1]
    assert [e.seq for e in await store.events_after("a", 0, device_id=None, limit=9)] == [
        nxt.seq
    ]


async def test_seq_not_reused_after_trimming_everything(store: Store) -> None:
    gone = await store.append_event("h", "d", T0, b"", {}, keep=0)
    assert await store.events_after(None, 0, device_id=None, limit=10) == []
    again = await store.append_event("h", "d", T0, b"", {}, keep=5)
    assert again.seq > gone.seq


async def test_append_events_is_one_batch_in_order(store: Store) -> None:
    assert await store.append_events("h", [], keep=10) == []
    first = await store.append_event("h", "a", T0, b"0", {}, keep=10)
    items = [(d, T0 + timedelta(microseconds=i), b"%d" % i, {"application": {"i": i}})
             for i, d in enumerate(["a", "b", "a", "c", "b"], start=1)]
    events = await store.append_events("h", items, keep=10)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5 and seqs[0] > first.seq
    assert [(e.hub, e.device_id, e.enqueued, e.body, e.properties) for e in events] == [
        ("h", *item) for item in items]
    assert await store.events_after("h", 0, device_id=None, limit=100) == [first, *events]
    a = await store.events_after("h", 0, device_id="a", limit=100)
    assert [e.body for e in a] == [b"0", b"1", b"3"]  # a device's messages keep their order
    assert await store.last_event_seq() == seqs[-1]
    with pytest.raises(ValueError):
        await store.append_events("h", items, keep=-1)


async def test_append_events_trims_once_to_the_newest_keep(store: Store) -> None:
    other = await store.append_event("other", "d", T0, b"o", {}, keep=10)
    await store.append_events("h", [("d", T0, b"old", {})] * 3, keep=10)
    events = await store.append_events(
        "h", [("d", T0, b"%d" % i, {}) for i in range(7)], keep=4)
    assert len(events) == 7  # every message is stored (and returned) before the trim
    kept = await store.events_after("h", 0, device_id=None, limit=100)
    assert kept == events[-4:]
    assert await store.events_after("other", 0, device_id=None, limit=10) == [other]
    again = await store.append_events("h", [("d", T0, b"x", {})], keep=0)
    assert again[0].seq > events[-1].seq  # seqs are never reused after trimming
    assert await store.events_after("h", 0, device_id=None, limit=10) == []
