"""The built-in hub's registry REST API (protocol.md §7.3), as ``azure-iot-hub`` calls it."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..hub.builtin import BuiltinHub
from ..hub.registry import RegistryError
from ..hub.twins import TwinNotFound
from ..protocol import sas
from ..protocol.etag import unquote
from ..protocol.hub_models import device_json, twin_json
from ..protocol.twin_patch import TwinPatchError
from ..store.interface import EtagMismatch, StoredDoc
from .context import CONTEXT
from .enrollments import json_body
from .responses import json_response


def authorize_hub(request: web.Request, right: str) -> BuiltinHub:
    """The token's ``sr`` names the hub; its policy must hold ``right``."""
    header = request.headers.get("Authorization")
    if not header:
        raise RegistryError(401, "IotHubUnauthorizedAccess", "the Authorization header is missing")
    try:
        token = sas.parse(header)
    except sas.SasError as exc:
        raise RegistryError(401, "IotHubUnauthorizedAccess", str(exc)) from None
    ctx = request.app[CONTEXT]
    hub = ctx.hub(token.resource.rstrip("/")) or ctx.hub(request.host.split(":")[0])
    if hub is None or token.expiry <= int(time.time()):
        raise RegistryError(401, "IotHubUnauthorizedAccess", "unauthorized")
    if token.resource.rstrip("/").lower() != hub.host_name.lower():
        raise RegistryError(401, "IotHubUnauthorizedAccess", "the token is for another hub")
    policy = hub.policies.get(token.key_name or "")
    keys = [policy["primaryKey"], policy["secondaryKey"]] if policy else []
    if not policy or not sas.signature_matches(token, keys):
        raise RegistryError(401, "IotHubUnauthorizedAccess", "unauthorized")
    if right not in policy.get("rights", ()):
        raise RegistryError(401, "IotHubUnauthorizedAccess", f"the policy lacks {right}")
    return hub


def _device(hub: BuiltinHub, stored: StoredDoc) -> dict[str, Any]:
    connected = hub.connections.is_connected(hub.host_name, stored.key)
    return device_json(stored.doc, f'"{stored.etag}"', connected)


async def list_devices(request: web.Request) -> web.Response:
    hub = authorize_hub(request, "RegistryRead")
    top = int(request.query.get("top", "1000") or 1000)
    return json_response([_device(hub, s) for s in await hub.registry.list(max(1, top))])


async def get_device(request: web.Request) -> web.Response:
    hub = authorize_hub(request, "RegistryRead")
    device_id = request.match_info["id"]
    stored = await hub.registry.get(device_id)
    if stored is None:
        raise RegistryError(404, "DeviceNotFound", f"device {device_id} not found")
    return json_response(_device(hub, stored))


async def put_device(request: web.Request) -> web.Response:
    hub = authorize_hub(request, "RegistryWrite")
    device_id = request.match_info["id"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise RegistryError(400, "ArgumentInvalid", "the body must be a Device object")
    if body.get("deviceId", device_id) != device_id:
        raise RegistryError(400, "ArgumentInvalid", "deviceId does not match the path")
    stored = await hub.registry.put(device_id, body, unquote(request.headers.get("If-Match")))
    return json_response(_device(hub, stored))


async def delete_device(request: web.Request) -> web.Response:
    hub = authorize_hub(request, "RegistryWrite")
    await hub.registry.delete(request.match_info["id"], unquote(request.headers.get("If-Match")))
    return web.Response(status=204)


async def _twin_response(hub: BuiltinHub, device_id: str) -> web.Response:
    device = await hub.registry.get(device_id)
    twin = await hub.twins.get(device_id)
    if device is None or twin is None:
        raise RegistryError(404, "DeviceNotFound", f"device {device_id} not found")
    connected = hub.connections.is_connected(hub.host_name, device_id)
    return json_response(twin_json(dict(device.doc, etag=device.etag), twin.doc, twin.etag,
                                   connected))


async def get_twin(request: web.Request) -> web.Response:
    hub = authorize_hub(request, "RegistryRead")
    return await _twin_response(hub, request.match_info["id"])


async def update_twin(request: web.Request) -> web.Response:
    """PATCH merges tags and desired properties; PUT replaces them."""
    hub = authorize_hub(request, "RegistryWrite")
    device_id = request.match_info["id"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise RegistryError(400, "ArgumentInvalid", "the body must be a Twin object")
    tags = body.get("tags") or {}
    desired = (body.get("properties") or {}).get("desired") or {}
    if not isinstance(tags, dict) or not isinstance(desired, dict):
        raise RegistryError(400, "ArgumentInvalid", "tags and desired properties must be objects")
    if_match = unquote(request.headers.get("If-Match"))
    try:
        if request.method == "PUT":
            await hub.twins.replace(device_id, tags, desired, if_match)
        else:
            await hub.twins.patch_desired(device_id, desired, tags=tags, if_match=if_match)
    except TwinNotFound:
        raise RegistryError(404, "DeviceNotFound", f"device {device_id} not found") from None
    except EtagMismatch:
        raise RegistryError(412, "PreconditionFailed", "the twin etag does not match") from None
    except TwinPatchError as exc:
        raise RegistryError(400, "ArgumentInvalid", str(exc)) from None
    return await _twin_response(hub, device_id)
