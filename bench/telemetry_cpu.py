"""CPU per telemetry message of the hub's own layers, in process: the MQTT endpoint, the hub
session, the group-committing intake and the SQLite store, fed encoded PUBLISHes directly (no
TLS, no sockets, no load generator). It is the part of ``server_cpu_ms_per_message`` that
opendps adds on top of TLS and the event loop, without the noise of a second process sharing
the two cores; CONNECT authentication is not measured.

    python bench/telemetry_cpu.py --devices 20 --rounds 1500 [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import tempfile
import time
from pathlib import Path

from opendps.client.hub_device import telemetry_topic
from opendps.client.loadgen import run
from opendps.hub.builtin import BuiltinHub
from opendps.hub.bus import EventBus
from opendps.hub.connections import ConnectionTable
from opendps.protocol import hub_topics
from opendps.protocol.mqtt import Connect, Publish, encode
from opendps.store import open_store
from opendps.transport.endpoint import MqttEndpoint
from opendps.transport.hub_session import HubSession

HUB = "hub.local"


class _Unauthenticated(HubSession):
    """CONNECT accepted without a key: authentication is not what is measured."""

    async def on_connect(self, packet: Connect) -> int:
        return 0


async def measure(data_dir: Path, devices: int, rounds: int, profile: str | None
                  ) -> dict[str, float]:
    store = await open_store(f"sqlite:///{data_dir / 'telemetry.db'}")
    hub = BuiltinHub(store, HUB, EventBus(), ConnectionTable(), telemetry_keep=10_000)
    acked = asyncio.Event()
    writes = [0, 0]  # written so far, written when the round is complete

    def written(_data: bytes) -> None:
        writes[0] += 1
        if writes[0] >= writes[1]:
            acked.set()

    def router(packet: Connect, endpoint: MqttEndpoint) -> HubSession:
        username = hub_topics.parse_username(f"{HUB}/{packet.client_id}/?api-version=2021-04-12")
        assert username is not None
        return _Unauthenticated(hub, username, endpoint)

    endpoints = []
    for i in range(devices):
        device_id = f"dev-{i:05d}"
        endpoint = MqttEndpoint(router, written, lambda: None)
        writes[1] += 1  # the CONNACK
        endpoint.feed(encode(Connect(device_id, username="u", password=None, keep_alive=0)))
        endpoints.append((endpoint, encode(Publish(telemetry_topic(device_id), b"x" * 64, 1, 1))))
    await acked.wait()

    async def one_round() -> None:
        """Every device publishes one message and the round ends when all are acknowledged,
        as with the load generator's one message in flight per device."""
        acked.clear()
        writes[1] = writes[0] + devices
        for endpoint, publish in endpoints:
            endpoint.feed(publish)
        await acked.wait()

    try:
        for _ in range(20):  # warm-up: statements planned, caches filled
            await one_round()
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            await one_round()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        messages = rounds * devices
        sent = messages + 20 * devices
        last = await store.last_event_seq()
        if last != sent:  # every acknowledged message is stored, none twice
            raise SystemExit(f"{sent} messages acknowledged, the log's last seq is {last}")
        return {"devices": devices, "messages": messages,
                "cpu_us_per_message": round(cpu / messages * 1e6, 1),
                "wall_us_per_message": round(wall / messages * 1e6, 1)}
    finally:
        for endpoint, _ in endpoints:
            endpoint.close("done")
        await hub.telemetry.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20,
                        help="connections; each round is one batch of this many messages "
                             "(the server's batches averaged ~20 in run_all's telemetry run)")
    parser.add_argument("--rounds", type=int, default=1500)
    parser.add_argument("--profile", help="write cProfile stats here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(measure(Path(tmp), args.devices, args.rounds, args.profile))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
