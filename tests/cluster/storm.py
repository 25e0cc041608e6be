"""A registration storm over the DPS HTTPS device API through the balancer, as impatient
devices do it: any error (connection reset, 5xx) means "try again", through whichever
instance the balancer picks next. Optionally ``kill -9`` one instance in the middle."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from integration.servers import ServerProcess
from opendps.protocol import sas
from opendps.protocol.sas import derive_device_key

from .cluster import Cluster, direct_context

API = "2019-03-31"
ATTEMPTS = 40


@dataclass
class StormResult:
    prefix: str
    assigned: dict[str, str] = field(default_factory=dict)  # registration id -> device id
    failed: list[str] = field(default_factory=list)
    retried: int = 0
    killed_at: float | None = None
    seconds: float = 0.0
    database_counts: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.assigned) / self.seconds if self.seconds else 0.0


async def _device(session: aiohttp.ClientSession, base_url: str, scope: str, reg_id: str,
                  key: str, result: StormResult) -> None:
    auth = {"Authorization": sas.generate(f"{scope}/registrations/{reg_id}", key,
                                          key_name="registration")}
    path = f"{base_url}/{scope}/registrations/{reg_id}"
    for _ in range(ATTEMPTS):
        try:
            async with session.put(f"{path}/register?api-version={API}", headers=auth,
                                   json={"registrationId": reg_id}) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 202:
                    raise RuntimeError(f"register: {resp.status} {body}")
            op = body["operationId"]
            for _poll in range(20):
                async with session.get(f"{path}/operations/{op}?api-version={API}",
                                       headers=auth) as resp:
                    body = await resp.json(content_type=None)
                if resp.status == 200 and body.get("status") == "assigned":
                    result.assigned[reg_id] = body["registrationState"]["deviceId"]
                    return
                if resp.status not in (200, 202):
                    raise RuntimeError(f"poll: {resp.status} {body}")
                await asyncio.sleep(0.1)
        except (aiohttp.ClientError, RuntimeError, TimeoutError, ValueError):
            result.retried += 1
            await asyncio.sleep(0.2)
    result.failed.append(reg_id)


async def _storm(cluster: Cluster, group_key: str, devices: int, concurrency: int,
                 kill_after: int | None, victim: ServerProcess | None) -> StormResult:
    result = StormResult(prefix=f"storm-{uuid.uuid4().hex[:6]}-")
    ids = [f"{result.prefix}{i:05d}" for i in range(devices)]
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(ssl=direct_context(cluster.lb), force_close=True,
                                     limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)

    async def one(session: aiohttp.ClientSession, reg_id: str) -> None:
        async with gate:
            await _device(session, f"https://{cluster.lb.host}", cluster.lb.id_scope, reg_id,
                          derive_device_key(group_key, reg_id), result)
            if (victim is not None and kill_after is not None and result.killed_at is None
                    and len(result.assigned) >= kill_after):
                result.killed_at = time.monotonic()
                os.kill(victim.proc.pid, signal.SIGKILL)  # a process this test started

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(session, r) for r in ids))
    result.seconds = time.monotonic() - started
    result.database_counts = await database_counts(cluster.db_url, result)
    return result


async def database_counts(db_url: str, result: StormResult) -> dict[str, int]:
    """What PostgreSQL holds for this storm's registrations and their hub identities."""
    like = result.prefix.replace("_", r"\_") + "%"
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM registrations WHERE key LIKE $1
                    AND doc::json->>'status' = 'assigned') AS registrations_assigned,
                 (SELECT count(*) FROM devices WHERE device_id LIKE $1) AS devices,
                 (SELECT count(DISTINCT device_id) FROM devices
                    WHERE device_id LIKE $1) AS distinct_devices,
                 (SELECT count(*) FROM registrations r WHERE r.key LIKE $1 AND NOT EXISTS
                    (SELECT 1 FROM devices d WHERE d.hub = r.assigned_hub
                       AND d.device_id = r.device_id)) AS missing_devices""", like)
        acked = list(result.assigned)
        found = await conn.fetchval(
            "SELECT count(*) FROM registrations WHERE key = ANY($1::text[])"
            " AND doc::json->>'status' = 'assigned'", acked)
        counts = dict(row)
        counts["acknowledged_missing"] = len(acked) - found
        return counts
    finally:
        await conn.close()


def run_storm(cluster: Cluster, group_key: str, *, devices: int, concurrency: int,
              kill_after: int | None = None,
              victim: ServerProcess | None = None) -> StormResult:
    return asyncio.run(_storm(cluster, group_key, devices, concurrency, kill_after, victim))
