"""DPS device API over HTTPS (protocol.md §1): register, operation status, status lookup."""

from __future__ import annotations

from aiohttp import web

from ..protocol.errors import DpsError, ErrorCode
from ..protocol.registration import MAX_REQUEST_BYTES
from ..provisioning.engine import RegistrationRequest, Reply
from .context import CONTEXT
from .responses import json_response
from .versions import require_api_version


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise DpsError(ErrorCode.PAYLOAD_TOO_LARGE,
                       f"the request body is larger than {MAX_REQUEST_BYTES} bytes")
    body = await request.content.read(MAX_REQUEST_BYTES + 1)
    if len(body) > MAX_REQUEST_BYTES:
        raise DpsError(ErrorCode.PAYLOAD_TOO_LARGE,
                       f"the request body is larger than {MAX_REQUEST_BYTES} bytes")
    return body


def _request(request: web.Request, body: bytes = b"") -> RegistrationRequest:
    require_api_version(request)
    force = request.query.get("forceRegistration", "").lower() == "true"
    transport = request.transport
    chain = (transport.get_extra_info("peercert_chain") if transport else None) or ()
    return RegistrationRequest(
        id_scope=request.match_info["scope"],
        registration_id=request.match_info["registration_id"],
        authorization=request.headers.get("Authorization"),
        body=body, force=force, client_chain=tuple(chain))


def _render(reply: Reply) -> web.Response:
    headers = {"retry-after": str(reply.retry_after)} if reply.retry_after else {}
    return json_response(reply.body, reply.status, headers)


async def register(request: web.Request) -> web.Response:
    body = await _body(request)
    ctx = request.app[CONTEXT]
    reply = await ctx.engine.register(_request(request, body))
    response = _render(reply)
    op = reply.body.get("operationId")
    if op:
        response.headers["Location"] = (
            f"/{request.match_info['scope']}/registrations/"
            f"{request.match_info['registration_id']}/operations/{op}")
    return response


async def operation_status(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    reply = await ctx.engine.operation_status(_request(request),
                                              request.match_info["operation_id"])
    return _render(reply)


async def registration_status(request: web.Request) -> web.Response:
    body = await _body(request)
    ctx = request.app[CONTEXT]
    return _render(await ctx.engine.registration_status(_request(request, body)))
