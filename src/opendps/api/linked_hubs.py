"""Admin REST: linked IoT hubs (the DPS ``iotHubs`` list: ``IotHubDefinitionDescription``).

Built-in hubs by host name, external hubs (Azure IoT Hub or another opendps) by connection
string, each with ``allocationWeight``, ``applyAllocationPolicy`` and ``location``. An external
hub's credentials are tried before the link is saved. Needs ServiceConfig."""

from __future__ import annotations

import base64
import os
import re
from typing import Any

from aiohttp import web

from ..protocol import connstr
from ..protocol.errors import DpsError, ErrorCode
from ..store.interface import HubRecord, NotFound
from .context import CONTEXT
from .enrollments import json_body
from .responses import json_response
from .service_guard import guard

_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
HUB_OWNER_RIGHTS = ["RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"]


def render(hub: HubRecord) -> dict[str, Any]:
    masked = None
    if hub.connection_string:
        try:
            parsed = connstr.parse(hub.connection_string)
            masked = (f"HostName={parsed.host_name};SharedAccessKeyName={parsed.key_name};"
                      "SharedAccessKey=****")
        except connstr.ConnectionStringError:
            masked = "****"
    return {"name": hub.host_name, "builtIn": hub.built_in, "connectionString": masked,
            "allocationWeight": hub.allocation_weight,
            "applyAllocationPolicy": hub.apply_allocation_policy, "location": hub.location}


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@guard("ServiceConfig")
async def list_hubs(request: web.Request) -> web.Response:
    hubs = await request.app[CONTEXT].store.list_hubs()
    return json_response({"value": [render(h) for h in hubs]})


@guard("ServiceConfig")
async def put_hub(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    host = request.match_info["host"].lower()
    if not _HOST.match(host):
        raise DpsError(ErrorCode.ARGUMENT_INVALID, f"{host!r} is not a host name")
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise DpsError(ErrorCode.ARGUMENT_INVALID, "the body must be a JSON object")
    weight = body.get("allocationWeight", 1)
    apply = body.get("applyAllocationPolicy", True)
    location = body.get("location", "")
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 1000:
        raise DpsError(ErrorCode.ARGUMENT_INVALID, "allocationWeight must be 0-1000")
    if not isinstance(apply, bool) or not isinstance(location, str):
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       "applyAllocationPolicy must be a boolean and location a string")
    existing = await ctx.store.get_hub(host)
    if existing is None and len(await ctx.store.list_hubs()) >= ctx.max_linked_hubs:
        raise DpsError(ErrorCode.CONFLICT, f"the limit of {ctx.max_linked_hubs} linked hubs "
                       "is reached; unlink one or raise max_linked_hubs")
    built_in = bool(body.get("builtIn", existing.built_in if existing else False))
    conn = body.get("connectionString")
    if built_in:
        policies = existing.policies if existing and existing.built_in else {
            "iothubowner": {"primaryKey": _key(), "secondaryKey": _key(),
                            "rights": HUB_OWNER_RIGHTS}}
        record = HubRecord(host, True, None, weight, apply, location, policies)
    else:
        if conn is None and existing is not None and not existing.built_in:
            conn = existing.connection_string
        if not isinstance(conn, str):
            raise DpsError(ErrorCode.ARGUMENT_INVALID,
                           "an external hub needs connectionString "
                           "(HostName=…;SharedAccessKeyName=…;SharedAccessKey=…)")
        try:
            parsed = connstr.parse(conn)
        except connstr.ConnectionStringError as exc:
            raise DpsError(ErrorCode.ARGUMENT_INVALID, f"connectionString: {exc}") from None
        if parsed.host_name.lower() != host:
            raise DpsError(ErrorCode.ARGUMENT_INVALID,
                           "the connection string's HostName differs from the hub's name")
        await _probe(ctx, conn)
        record = HubRecord(host, False, conn, weight, apply, location)
    await ctx.store.put_hub(record)
    if ctx.hubs_changed is not None:
        await ctx.hubs_changed()
    return json_response(render(record), status=200 if existing else 201)


async def _probe(ctx: Any, conn: str) -> None:
    """A registry read proves the credentials before DPS relies on them."""
    from ..hub.external import ExternalHub

    hub = ExternalHub(conn, ca_file=ctx.external_hub_ca_file)
    try:
        await hub.device_exists("opendps-link-check")
    except DpsError as err:
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       f"the hub could not be used: {err.message}") from None
    finally:
        await hub.close()


@guard("ServiceConfig")
async def delete_hub(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    host = request.match_info["host"].lower()
    try:
        await ctx.store.delete_hub(host)
    except NotFound:
        raise DpsError(ErrorCode.NOT_FOUND, f"IoT hub {host} is not linked") from None
    if ctx.hubs_changed is not None:
        await ctx.hubs_changed()
    return web.Response(status=204)
