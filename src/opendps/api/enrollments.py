"""DPS service API: individual enrollments and enrollment groups (protocol.md §4)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..protocol import enrollment as model
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.etag import quote, unquote
from ..protocol.regid import registration_key
from ..protocol.timefmt import format_utc
from ..store.interface import EnrollmentKind, EtagMismatch, NotFound, StoredDoc
from .context import CONTEXT
from .paging import page_params, paged_response
from .responses import json_response
from .service_guard import guard

KINDS: dict[str, EnrollmentKind] = {"enrollments": "individual", "enrollmentgroups": "group"}
MAX_BULK = 10


def _kind(request: web.Request) -> EnrollmentKind:
    return KINDS[request.match_info["collection"].lower()]


def _not_found(kind: EnrollmentKind, key: str) -> DpsError:
    if kind == "individual":
        return DpsError(ErrorCode.ENROLLMENT_NOT_FOUND, f"Enrollment {key} not found")
    return DpsError(ErrorCode.ENROLLMENT_GROUP_NOT_FOUND, f"Enrollment group {key} not found")


def render(stored: StoredDoc, *, secrets: bool) -> dict[str, Any]:
    doc = dict(stored.doc) if secrets else model.strip_secrets(stored.doc)
    doc["etag"] = quote(stored.etag)
    doc["createdDateTimeUtc"] = format_utc(stored.created)
    doc["lastUpdatedDateTimeUtc"] = format_utc(stored.updated)
    return doc


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise DpsError(ErrorCode.INVALID_JSON, "the request body is not valid JSON") from None


def _validate(kind: EnrollmentKind, body: Any, key: str) -> dict[str, Any]:
    if kind == "individual":
        return model.validate_individual(body, key)
    return model.validate_group(body, key)


async def _put(request: web.Request, kind: EnrollmentKind, key: str, body: Any,
               if_match: str | None) -> StoredDoc:
    ctx = request.app[CONTEXT]
    doc = _validate(kind, body, key)
    named = list(doc.get("iotHubs") or []) + (
        [doc["iotHubHostName"]] if doc.get("iotHubHostName") else [])
    if named:
        linked = {h.host_name.lower() for h in await ctx.store.list_hubs()}
        unlinked = [h for h in named if h.lower() not in linked]
        if unlinked:
            raise DpsError(ErrorCode.ARGUMENT_INVALID,
                           f"IoT hub {unlinked[0]} is not linked to this service")
    refs = (doc["attestation"].get("x509") or {}).get("caReferences") or {}
    for ref in refs.values():
        if await ctx.store.get_ca_certificate(ref) is None:
            raise DpsError(ErrorCode.ARGUMENT_INVALID,
                           f"caReferences names CA certificate '{ref}', which is not uploaded")
    try:
        return await ctx.store.put_enrollment(
            kind, key, doc, if_match=if_match, attestation_type=doc["attestation"]["type"],
            enabled=doc["provisioningStatus"] == "enabled")
    except EtagMismatch:
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "the etag does not match the enrollment's current etag") from None
    except NotFound:
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "If-Match was given but the enrollment does not exist") from None


@guard("EnrollmentRead")
async def get(request: web.Request) -> web.Response:
    kind, key = _kind(request), request.match_info["id"]
    stored = await request.app[CONTEXT].store.get_enrollment(kind, registration_key(key))
    if stored is None:
        raise _not_found(kind, key)
    return json_response(render(stored, secrets=False), headers={"ETag": quote(stored.etag)})


@guard("EnrollmentWrite")
async def put(request: web.Request) -> web.Response:
    kind, key = _kind(request), request.match_info["id"]
    stored = await _put(request, kind, key, await json_body(request),
                        unquote(request.headers.get("If-Match")))
    return json_response(render(stored, secrets=True), headers={"ETag": quote(stored.etag)})


@guard("EnrollmentWrite")
async def delete(request: web.Request) -> web.Response:
    kind, key = _kind(request), request.match_info["id"]
    try:
        await request.app[CONTEXT].store.delete_enrollment(
            kind, registration_key(key), if_match=unquote(request.headers.get("If-Match")))
    except NotFound:
        raise _not_found(kind, key) from None
    except EtagMismatch:
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "the etag does not match the enrollment's current etag") from None
    return web.Response(status=204)


@guard("EnrollmentRead")
async def attestation_mechanism(request: web.Request) -> web.Response:
    kind, key = _kind(request), request.match_info["id"]
    stored = await request.app[CONTEXT].store.get_enrollment(kind, registration_key(key))
    if stored is None:
        raise _not_found(kind, key)
    return json_response(stored.doc["attestation"])


@guard("EnrollmentRead")
async def query(request: web.Request) -> web.Response:
    kind = _kind(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise DpsError(ErrorCode.ARGUMENT_INVALID, "the body must be {\"query\": \"SELECT ...\"}")
    limit, continuation = page_params(request)
    page = await request.app[CONTEXT].store.query_enrollments(
        kind, limit=limit, continuation=continuation)
    item_type = "Enrollment" if kind == "individual" else "EnrollmentGroup"
    return paged_response([render(s, secrets=False) for s in page.items], page, limit, item_type)


@guard("EnrollmentWrite")
async def bulk(request: web.Request) -> web.Response:
    kind = _kind(request)
    body = await json_body(request)
    field, id_name = (("enrollments", "registrationId") if kind == "individual"
                      else ("enrollmentGroups", "enrollmentGroupId"))
    if not isinstance(body, dict) or not isinstance(body.get(field), list):
        raise DpsError(ErrorCode.ARGUMENT_INVALID, f"the body must carry a '{field}' list")
    mode = body.get("mode")
    if mode not in ("create", "update", "updateIfMatchETag", "delete"):
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       "mode must be create, update, updateIfMatchETag or delete")
    items = body[field]
    if not 1 <= len(items) <= MAX_BULK:
        raise DpsError(ErrorCode.ARGUMENT_INVALID, f"a bulk operation takes 1 to {MAX_BULK} items")
    store = request.app[CONTEXT].store
    errors = []
    for item in items:
        key = item.get(id_name) if isinstance(item, dict) else None
        try:
            if not isinstance(key, str):
                raise DpsError(ErrorCode.ARGUMENT_INVALID, f"{id_name} is required")
            etag = unquote(item.get("etag"))
            if mode == "delete":
                await store.delete_enrollment(
                    kind, registration_key(key), if_match=etag)
            elif mode == "create":
                if await store.get_enrollment(kind, registration_key(key)) is not None:
                    raise DpsError(ErrorCode.CONFLICT, f"{key} already exists")
                await _put(request, kind, key, item, None)
            elif mode == "update":
                await _put(request, kind, key, item, None)
            else:
                await _put(request, kind, key, item, etag or "*")
        except DpsError as err:
            errors.append({id_name: key, "errorCode": int(err.code), "errorStatus": err.message})
        except NotFound:
            errors.append({id_name: key, "errorCode": int(ErrorCode.NOT_FOUND),
                           "errorStatus": f"{key} not found"})
        except EtagMismatch:
            errors.append({id_name: key, "errorCode": int(ErrorCode.PRECONDITION_FAILED),
                           "errorStatus": "the etag does not match"})
    return json_response({"isSuccessful": not errors, "errors": errors})
