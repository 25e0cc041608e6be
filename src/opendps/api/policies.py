"""Admin REST: service access policies (the management plane's ``AccessRightsDescription``).

Needs the ServiceConfig right, like every configuration change in DPS."""

from __future__ import annotations

import base64
import os
from typing import Any

from aiohttp import web

from ..protocol.errors import DpsError, ErrorCode
from ..store.interface import AccessPolicy
from .context import CONTEXT
from .enrollments import json_body
from .responses import json_response
from .service_guard import guard

RIGHTS = ("ServiceConfig", "EnrollmentRead", "EnrollmentWrite", "DeviceConnect",
          "RegistrationStatusRead", "RegistrationStatusWrite")
OWNER = "provisioningserviceowner"


def _render(policy: AccessPolicy, secrets: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"keyName": policy.name, "rights": ", ".join(
        r for r in RIGHTS if r in policy.rights)}
    if secrets:
        out["primaryKey"] = policy.primary_key
        out["secondaryKey"] = policy.secondary_key
    return out


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@guard("ServiceConfig")
async def list_policies(request: web.Request) -> web.Response:
    policies = await request.app[CONTEXT].store.list_policies()
    return json_response([_render(p, secrets=False) for p in policies])


@guard("ServiceConfig")
async def put_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise DpsError(ErrorCode.ARGUMENT_INVALID, "the body must be a JSON object")
    raw = body.get("rights", "")
    wanted = [r.strip() for r in (raw.split(",") if isinstance(raw, str) else raw) if r.strip()]
    unknown = [r for r in wanted if r not in RIGHTS]
    if unknown or not wanted:
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       f"rights must be a non-empty subset of {', '.join(RIGHTS)}")
    if name == OWNER and set(wanted) != set(RIGHTS):
        raise DpsError(ErrorCode.ARGUMENT_INVALID, f"{OWNER} keeps every right")
    store = request.app[CONTEXT].store
    old = await store.get_policy(name)
    policy = AccessPolicy(
        name, body.get("primaryKey") or (old.primary_key if old else _key()),
        body.get("secondaryKey") or (old.secondary_key if old else _key()), frozenset(wanted))
    await store.put_policy(policy)
    return json_response(_render(policy, secrets=True))
