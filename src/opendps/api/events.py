"""Live telemetry for ``opendps hub monitor-events``: kept events first, then new ones as they
arrive, as newline-delimited JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..hub.bus import telemetry_channel
from ..hub.registry import RegistryError
from ..hub.telemetry import event_json
from .context import CONTEXT
from .hub_registry import authorize_hub

BATCH = 500
HEARTBEAT_SECONDS = 15.0
CHECK_SECONDS = 1.0  # how soon a vanished monitor's stream ends


def _line(event: Any) -> bytes:
    return json.dumps(event_json(event), separators=(",", ":")).encode() + b"\n"


async def stream(request: web.Request) -> web.StreamResponse:
    hub = authorize_hub(request, "ServiceConnect")
    ctx = request.app[CONTEXT]
    wanted = request.query.get("hub")
    if wanted and wanted.lower() != hub.host_name.lower():
        raise RegistryError(401, "IotHubUnauthorizedAccess", "the token is for another hub")
    device_id = request.query.get("deviceId") or None
    try:
        last = int(request.query.get("after", "0"))
    except ValueError:
        raise RegistryError(400, "ArgumentInvalid", "after must be an integer") from None
    follow = request.query.get("follow", "true").lower() != "false"

    queue, unsubscribe = ctx.bus.queue(telemetry_channel(hub.host_name))
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        while True:
            batch = await ctx.store.events_after(hub.host_name, last, device_id=device_id,
                                                 limit=BATCH)
            for event in batch:
                await response.write(_line(event))
                last = event.seq
            if len(batch) < BATCH:
                break
        quiet = 0.0
        while follow:
            transport = request.transport
            if transport is None or transport.is_closing():
                break  # the monitor went away: do not hold the stream (or a shutdown) open
            try:
                event = await asyncio.wait_for(queue.get(), CHECK_SECONDS)
            except TimeoutError:
                quiet += CHECK_SECONDS
                if quiet >= HEARTBEAT_SECONDS:
                    quiet = 0.0
                    await response.write(b"\n")
                continue
            quiet = 0.0
            if event.seq <= last or (device_id and event.device_id != device_id):
                continue
            await response.write(_line(event))
            last = event.seq
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        unsubscribe()
    return response
