"""Hub loads: M connected devices publishing telemetry at QoS 1, and K idle connections.

The same code drives opendps's built-in hub and a plain MQTT broker (Mosquitto, the
reference): a broker takes any client ID, so its devices need no key and no registration.
For opendps, ``provision`` registers the devices through DPS first (not measured).
"""

from __future__ import annotations

import asyncio
import resource
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..hub_device import HubDeviceClient, telemetry_topic
from .devices import DeviceFleet
from .register import RegisterLoad, RegisterTarget, register_one
from .stats import ProcessMeter, Recorder, error_code, raise_fd_limit

Progress = Callable[[int], None]
CONNECT_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class HubDevice:
    device_id: str
    hub_host: str
    key: str | None


@dataclass
class HubTarget:
    """``connect_host`` None: connect to the device's own ``hub_host``."""

    ssl_context: ssl.SSLContext
    connect_host: str | None = None
    port: int = 8883


async def provision(target: RegisterTarget, fleet: DeviceFleet, count: int, *,
                    concurrency: int = 32, response_timeout: float = 30.0) -> list[HubDevice]:
    """Register ``count`` symmetric-key devices over MQTT; their hub and derived key."""
    out: list[HubDevice] = []
    pending = iter(range(count))
    errors: list[BaseException] = []
    load = RegisterLoad("mqtt", poll_immediately=True, timeout=response_timeout)

    async def worker() -> None:
        for i in pending:
            who = fleet.identity(i)
            try:
                status = await register_one(target, load, who)
            except Exception as exc:  # reported below
                errors.append(exc)
                continue
            state = status.get("registrationState") or {}
            out.append(HubDevice(state.get("deviceId") or who.registration_id,
                                 state.get("assignedHub") or target.host, who.key))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} devices failed to register "
                           f"(first: {error_code(errors[0])}: {errors[0]})")
    return out


async def connect_all(target: HubTarget, devices: list[HubDevice], recorder: Recorder | None,
                      *, response_timeout: float = 30.0,
                      progress: Progress | None = None) -> list[HubDeviceClient]:
    """Open one hub connection per device, ``CONNECT_CONCURRENCY`` handshakes at a time."""
    clients: list[HubDeviceClient] = []
    pending = iter(devices)

    async def worker() -> None:
        for device in pending:
            client = HubDeviceClient(device.hub_host, device.device_id, device.key,
                                     ssl_context=target.ssl_context, port=target.port,
                                     timeout=response_timeout, connect_host=target.connect_host)
            started = time.perf_counter()
            try:
                await client.connect()
            except Exception as exc:  # counted by code
                if recorder is not None:
                    recorder.fail(exc)
            else:
                clients.append(client)
                if recorder is not None:
                    recorder.ok(time.perf_counter() - started)
            if progress is not None:
                progress(1)

    await asyncio.gather(*(worker() for _ in range(CONNECT_CONCURRENCY)))
    return clients


async def close_all(clients: list[HubDeviceClient]) -> None:
    for start in range(0, len(clients), 500):
        await asyncio.gather(*(c.close() for c in clients[start:start + 500]),
                             return_exceptions=True)


async def run_telemetry(target: HubTarget, devices: list[HubDevice], *, rate: float,
                        duration: float, payload_size: int = 64,
                        server_pids: list[int] | None = None,
                        progress: Progress | None = None) -> dict[str, Any]:
    """Each device publishes QoS 1 messages, one in flight, ``rate`` per second (0: as fast
    as PUBACKs return) for ``duration`` seconds. Latency is publish-to-PUBACK."""
    raise_fd_limit()
    connect_errors = Recorder()
    clients = await connect_all(target, devices, connect_errors)
    recorder = Recorder(ProcessMeter(server_pids))
    payload = b"x" * payload_size
    try:
        recorder.start()
        t0 = time.perf_counter()
        deadline = t0 + duration

        async def publisher(client: HubDeviceClient) -> None:
            topic = telemetry_topic(client.device_id)
            sent = 0
            while time.perf_counter() < deadline:
                if rate:
                    delay = t0 + sent / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        if time.perf_counter() >= deadline:
                            return
                started = time.perf_counter()
                sent += 1
                try:
                    await client.session.publish(topic, payload, 1)
                except Exception as exc:  # counted; this device stops
                    recorder.fail(exc)
                    return
                recorder.ok(time.perf_counter() - started)
                if progress is not None:
                    progress(1)

        await asyncio.gather(*(publisher(c) for c in clients))
        recorder.stop()
    finally:
        await close_all(clients)
    result = recorder.result("message", kind="telemetry", devices=len(devices),
                             connected=len(clients), rate_per_device=rate,
                             payload_bytes=payload_size)
    result["connect_errors"] = dict(connect_errors.errors)
    result["error_count"] += sum(connect_errors.errors.values())
    return result


async def run_idle(target: HubTarget, devices: list[HubDevice], *, hold: float = 5.0,
                   server_pids: list[int] | None = None,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Open one connection per device, hold them ``hold`` seconds, check they all survived,
    and report the server's memory per connection."""
    raise_fd_limit()
    meter = ProcessMeter(server_pids)
    rss_before = meter.rss_mib()
    recorder = Recorder(meter)
    recorder.start()
    clients = await connect_all(target, devices, recorder, progress=progress)
    recorder.stop()
    result = recorder.result("connection", kind="idle", connections=len(devices))
    try:
        await asyncio.sleep(hold)
        alive = sum(1 for c in clients if c.session.closed_reason is None)
        rss_held = meter.rss_mib()
        result.update({
            "open_after_hold": alive,
            "hold_s": hold,
            "server_rss_before_mib": round(rss_before, 1),
            "server_rss_held_mib": round(rss_held, 1),
            "server_peak_rss_mib": round(meter.peak_rss_mib(), 1),
            "server_kib_per_connection": round(1024 * (rss_held - rss_before) / alive, 1)
            if alive and meter else None,
            "client_peak_rss_mib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        })
        if alive < len(clients):
            result["errors"]["dropped during hold"] = len(clients) - alive
            result["error_count"] += len(clients) - alive
    finally:
        await close_all(clients)
    return result
