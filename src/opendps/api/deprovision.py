"""Admin REST: deprovision a device (how-to-unprovision-devices): disenroll it, then remove its
identity from the hub it was assigned to.

Disenrolling an individual enrollment deletes it (or disables it with ``disable``); a device
that came from a group gets a disabled individual enrollment that blocks it alone, since the
group must keep serving the rest of the fleet. Needs EnrollmentWrite and
RegistrationStatusWrite."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..protocol.enrollment import validate_individual
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.regid import registration_key
from ..store.interface import NotFound
from .context import CONTEXT
from .enrollments import json_body
from .responses import json_response
from .service_guard import guard


@guard("EnrollmentWrite", "RegistrationStatusWrite")
async def deprovision(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    reg_id = request.match_info["id"]
    body = await json_body(request) or {}
    disable = bool(body.get("disable", False)) if isinstance(body, dict) else False
    key = registration_key(reg_id)
    record = await ctx.store.get_registration(key)
    individual = await ctx.store.get_enrollment("individual", key)
    if record is None and individual is None:
        raise DpsError(ErrorCode.REGISTRATION_NOT_FOUND,
                       f"{reg_id} has neither an enrollment nor a registration record")
    result: dict[str, Any] = {"registrationId": reg_id}
    group = (record.doc.get("symmetricKey") or record.doc.get("x509") or {}).get(
        "enrollmentGroupId") if record else None
    if individual is not None:
        if disable:
            doc = dict(individual.doc, provisioningStatus="disabled")
            await ctx.store.put_enrollment("individual", key, doc, if_match=None,
                                           attestation_type=doc["attestation"]["type"],
                                           enabled=False)
            result["enrollment"] = "disabled"
        else:
            await ctx.store.delete_enrollment("individual", key, if_match=None)
            result["enrollment"] = "deleted"
    elif group is not None:
        doc = validate_individual({"registrationId": reg_id, "provisioningStatus": "disabled",
                                   "attestation": {"type": "symmetricKey"}}, reg_id)
        await ctx.store.put_enrollment("individual", key, doc, if_match=None,
                                       attestation_type="symmetricKey", enabled=False)
        result["enrollment"] = f"blocked in group {group} by a disabled individual enrollment"
    if record is not None and record.doc.get("assignedHub") and record.doc.get("deviceId"):
        hub = record.doc["assignedHub"]
        await ctx.engine.hubs.linked()  # refresh external hub clients
        port = ctx.engine.hubs.port(hub)
        if port is None:
            result["hubIdentity"] = f"left alone: {hub} is no longer linked"
        else:
            await port.delete_device(record.doc["deviceId"])
            result["hubIdentity"] = f"deleted from {hub}"
        try:
            await ctx.store.delete_registration(key, if_match=None)
        except NotFound:
            pass
        result["registrationRecord"] = "deleted"
    return json_response(result)
