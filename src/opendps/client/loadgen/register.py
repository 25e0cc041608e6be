"""``opendps bench register``: N devices, each a full registration on a new TLS connection.

One event loop, ``concurrency`` worker coroutines taking the next device number; with
``rate`` the workers also wait for each device's start time (i / rate), so latency can be
measured below saturation. The run ends when every device is done or, with ``duration``,
when no new device may start (devices in flight finish).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .devices import DeviceFleet, Identity
from .https import HttpsRegistration
from .mqtt import MqttRegistration
from .stats import LoopLag, ProcessMeter, Recorder, raise_fd_limit

Progress = Callable[[int], None]


@dataclass
class RegisterTarget:
    """Where devices connect. ``host`` is checked against the certificate; ``connect_host``
    is where the socket goes (the floor server and nginx present opendps's certificate)."""

    host: str
    id_scope: str
    connect_host: str | None = None
    https_port: int = 443
    mqtt_port: int = 8883


@dataclass
class RegisterLoad:
    transport: str = "https"  # or "mqtt"
    devices: int = 200
    duration: float | None = None
    concurrency: int = 32
    rate: float | None = None  # device starts per second; None: as fast as possible
    poll_immediately: bool = False
    timeout: float = 30.0


async def register_one(target: RegisterTarget, load: RegisterLoad,
                       who: Identity) -> dict[str, Any]:
    """One device's registration to ``assigned`` (the final operation status); raises on any
    failure."""
    if load.transport == "https":
        return await HttpsRegistration(
            target.host, target.id_scope, who.registration_id, who.key, tls=who.tls,
            port=target.https_port, connect_host=target.connect_host,
            poll_immediately=load.poll_immediately, timeout=load.timeout).register()
    if load.transport == "mqtt":
        return await MqttRegistration(
            target.host, target.id_scope, who.registration_id, who.key, tls=who.tls,
            port=target.mqtt_port, connect_host=target.connect_host,
            poll_immediately=load.poll_immediately, timeout=load.timeout).register()
    raise ValueError(f"unknown transport {load.transport!r} (https or mqtt)")


async def run_register(target: RegisterTarget, load: RegisterLoad, fleet: DeviceFleet, *,
                       server_pids: list[int] | None = None, first: int = 0,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Register devices ``first`` .. ``first + devices - 1`` of ``fleet`` (whose group must
    exist) and return the figures."""
    raise_fd_limit()
    fleet.prepare(first + load.devices)
    recorder = Recorder(ProcessMeter(server_pids))
    next_index = first
    end = first + load.devices
    recorder.start()
    lag = LoopLag()
    lag.start()
    t0 = time.perf_counter()
    stop_at = t0 + load.duration if load.duration else None

    async def worker() -> None:
        nonlocal next_index
        while next_index < end:
            i = next_index
            next_index += 1
            if load.rate:
                delay = t0 + (i - first) / load.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if stop_at is not None and time.perf_counter() >= stop_at:
                return
            started = time.perf_counter()
            try:
                await register_one(target, load, fleet.identity(i))
            except Exception as exc:
                recorder.fail(exc)
            else:
                recorder.ok(time.perf_counter() - started)
            if progress is not None:
                progress(1)

    await asyncio.gather(*(worker() for _ in range(max(1, load.concurrency))))
    recorder.stop()
    return recorder.result(
        "registration", kind="register", transport=load.transport,
        attestation=fleet.attestation, target=target.connect_host or target.host,
        devices=load.devices, concurrency=load.concurrency, rate=load.rate,
        poll_immediately=load.poll_immediately, group_id=fleet.group_id, **lag.stop())
