"""DPS service API: device registration states (get, delete, query by group)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..protocol.errors import DpsError, ErrorCode
from ..protocol.etag import unquote
from ..protocol.regid import registration_key
from ..protocol.registration import public_state
from ..store.interface import EtagMismatch, NotFound, StoredDoc
from .context import CONTEXT
from .paging import page_params, paged_response
from .responses import json_response
from .service_guard import guard


def render(stored: StoredDoc) -> dict[str, Any]:
    """The service view: ``DeviceRegistrationState`` (no device-only attestation echo)."""
    doc = public_state(stored.doc)
    return {k: v for k, v in doc.items() if k not in ("symmetricKey", "x509", "tpm")}


def _not_found(key: str) -> DpsError:
    return DpsError(ErrorCode.REGISTRATION_NOT_FOUND, f"Registration {key} not found")


@guard("RegistrationStatusRead")
async def get(request: web.Request) -> web.Response:
    key = request.match_info["id"]
    stored = await request.app[CONTEXT].store.get_registration(registration_key(key))
    if stored is None:
        raise _not_found(key)
    return json_response(render(stored))


@guard("RegistrationStatusWrite")
async def delete(request: web.Request) -> web.Response:
    key = request.match_info["id"]
    store = request.app[CONTEXT].store
    stored = await store.get_registration(registration_key(key))
    if stored is None:
        raise _not_found(key)
    wanted = unquote(request.headers.get("If-Match"))
    if wanted not in (None, "*") and wanted != unquote(stored.doc.get("etag")):
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "the etag does not match the registration's current etag")
    try:
        await store.delete_registration(registration_key(key), if_match=stored.etag)
    except NotFound:
        raise _not_found(key) from None
    except EtagMismatch:
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "the registration changed while it was being deleted") from None
    return web.Response(status=204)


@guard("RegistrationStatusRead")
async def query(request: web.Request) -> web.Response:
    group = request.match_info["id"]
    limit, continuation = page_params(request)
    page = await request.app[CONTEXT].store.query_registrations(
        registration_key(group), limit=limit, continuation=continuation)
    return paged_response([render(s) for s in page.items], page, limit,
                          "DeviceRegistration")
