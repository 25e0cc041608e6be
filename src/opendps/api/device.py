"""DPS device API over HTTPS (protocol.md §1): register, operation status, status lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web
from cryptography import x509

from ..protocol.errors import DpsError, ErrorCode
from ..protocol.registration import MAX_REQUEST_BYTES
from ..provisioning.engine import RegistrationRequest, Reply
from .context import CONTEXT
from .responses import json_response
from .versions import check_api_version


def too_large() -> DpsError:
    """What a body over DPS's maximum gets, on either HTTP layer."""
    return DpsError(ErrorCode.PAYLOAD_TOO_LARGE,
                    f"the request body is larger than {MAX_REQUEST_BYTES} bytes")


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise too_large()
    body = await request.content.read(MAX_REQUEST_BYTES + 1)
    if len(body) > MAX_REQUEST_BYTES:
        raise too_large()
    return body


def registration_request(params: Mapping[str, str], query: Mapping[str, str],
                         authorization: str | None, body: bytes,
                         chain: tuple[x509.Certificate, ...]) -> RegistrationRequest:
    """Shared with ``device_front``, which serves these routes without aiohttp."""
    check_api_version(query.get("api-version"))
    return RegistrationRequest(
        id_scope=params["scope"], registration_id=params["registration_id"],
        authorization=authorization, body=body,
        force=query.get("forceRegistration", "").lower() == "true", client_chain=chain)


def location(params: Mapping[str, str], operation_id: str) -> str:
    return (f"/{params['scope']}/registrations/{params['registration_id']}/operations/"
            f"{operation_id}")


def client_chain(transport: asyncio.BaseTransport | None) -> tuple[x509.Certificate, ...]:
    """The chain the device presented in the TLS handshake, leaf first (X.509 attestation)."""
    chain = transport.get_extra_info("peercert_chain") if transport is not None else None
    return tuple(chain or ())


def _request(request: web.Request, body: bytes = b"") -> RegistrationRequest:
    return registration_request(request.match_info, request.query,
                                request.headers.get("Authorization"), body,
                                client_chain(request.transport))


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
        response.headers["Location"] = location(request.match_info, op)
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
