"""Admin REST: CA certificates with proof of possession (the DPS certificate API, §5).

Upload (optionally verified on upload), list, show, delete, generate a verification code, and
verify with a certificate whose CN is the code and which the CA signed. Needs ServiceConfig."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..protocol.errors import DpsError, ErrorCode
from ..protocol.etag import quote, unquote
from ..protocol.regid import is_valid_registration_id
from ..protocol.timefmt import format_utc, utc_now
from ..protocol.x509.certificates import (
    CertificateFormatError,
    certificate_info,
    load_certificate,
    to_pem,
)
from ..protocol.x509.pop import PopError, check_verification_certificate, new_verification_code
from ..store.interface import EtagMismatch, NotFound, StoredDoc
from .context import CONTEXT
from .enrollments import json_body
from .responses import json_response
from .service_guard import guard

RESOURCE_TYPE = "Microsoft.Devices/ProvisioningServices/Certificates"


def render(stored: StoredDoc, *, code: bool = False) -> dict[str, Any]:
    doc = stored.doc
    props = {
        "subject": doc["subject"], "expiry": doc["expiry"], "thumbprint": doc["thumbprint"],
        "isVerified": doc["isVerified"], "certificate": doc["certificate"],
        "created": format_utc(stored.created), "updated": format_utc(stored.updated),
    }
    if code:
        props["verificationCode"] = doc["verificationCode"]
    return {"name": stored.key, "etag": quote(stored.etag),
            "id": f"/certificates/{stored.key}", "type": RESOURCE_TYPE, "properties": props}


def _not_found(name: str) -> DpsError:
    return DpsError(ErrorCode.NOT_FOUND, f"CA certificate {name} not found")


def _certificate_field(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("certificate"), str):
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       "the body must be {\"certificate\": \"<PEM or base-64 .cer>\"}")
    return body["certificate"]


def _load(text: str) -> Any:
    try:
        return load_certificate(text)
    except CertificateFormatError as exc:
        raise DpsError(ErrorCode.ARGUMENT_INVALID, f"the certificate {exc}") from None


async def _get(request: web.Request, name: str) -> StoredDoc:
    stored = await request.app[CONTEXT].store.get_ca_certificate(name)
    if stored is None:
        raise _not_found(name)
    return stored


async def _save(request: web.Request, name: str, doc: dict[str, Any],
                if_match: str | None) -> StoredDoc:
    try:
        return await request.app[CONTEXT].store.put_ca_certificate(name, doc, if_match=if_match)
    except EtagMismatch:
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "the etag does not match the certificate's current etag") from None
    except NotFound:
        raise _not_found(name) from None


def _required_if_match(request: web.Request) -> str:
    value = unquote(request.headers.get("If-Match"))
    if value is None:
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "If-Match with the certificate's etag is required")
    return value


@guard("ServiceConfig")
async def list_certificates(request: web.Request) -> web.Response:
    items = await request.app[CONTEXT].store.list_ca_certificates()
    return json_response({"value": [render(s) for s in items]})


@guard("ServiceConfig")
async def get_certificate(request: web.Request) -> web.Response:
    return json_response(render(await _get(request, request.match_info["name"])))


@guard("ServiceConfig")
async def put_certificate(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    name = request.match_info["name"]
    if not is_valid_registration_id(name) or len(name) > 64:
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       "a certificate name is 1-64 alphanumerics or ': . _ -'")
    body = await json_body(request)
    cert = _load(_certificate_field(body))
    basic = _basic_constraints(cert)
    if not basic:
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       "the certificate is not a CA certificate (basicConstraints CA:TRUE)")
    existing = await ctx.store.get_ca_certificate(name)
    if existing is None and await ctx.store.count_ca_certificates() >= ctx.max_ca_certificates:
        raise DpsError(ErrorCode.CONFLICT, f"the limit of {ctx.max_ca_certificates} CA "
                       "certificates is reached; delete one or raise max_ca_certificates")
    info = certificate_info(cert)
    doc = {
        "certificate": to_pem(cert), "subject": info["subjectName"],
        "thumbprint": info["sha1Thumbprint"], "sha256Thumbprint": info["sha256Thumbprint"],
        "expiry": info["notAfterUtc"], "isVerified": bool(body.get("isVerified", False)),
        "verificationCode": None,
    }
    stored = await _save(request, name, doc, unquote(request.headers.get("If-Match")))
    return json_response(render(stored), status=200 if existing else 201)


def _basic_constraints(cert: Any) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@guard("ServiceConfig")
async def delete_certificate(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        await request.app[CONTEXT].store.delete_ca_certificate(
            name, if_match=unquote(request.headers.get("If-Match")))
    except NotFound:
        raise _not_found(name) from None
    except EtagMismatch:
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "the etag does not match the certificate's current etag") from None
    return web.Response(status=204)


@guard("ServiceConfig")
async def generate_verification_code(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if_match = _required_if_match(request)
    stored = await _get(request, name)
    doc = dict(stored.doc, verificationCode=new_verification_code())
    return json_response(render(await _save(request, name, doc, if_match), code=True))


@guard("ServiceConfig")
async def verify_certificate(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if_match = _required_if_match(request)
    stored = await _get(request, name)
    code = stored.doc.get("verificationCode")
    if not code:
        raise DpsError(ErrorCode.ARGUMENT_INVALID,
                       "generate a verification code for this certificate first")
    if if_match not in ("*", stored.etag):
        raise DpsError(ErrorCode.PRECONDITION_FAILED,
                       "the etag does not match the certificate's current etag")
    proof = _load(_certificate_field(await json_body(request)))
    try:
        check_verification_certificate(load_certificate(stored.doc["certificate"]), proof,
                                       code, now=utc_now())
    except PopError as exc:
        raise DpsError(ErrorCode.ARGUMENT_INVALID, f"proof of possession failed: {exc}") from None
    doc = dict(stored.doc, isVerified=True, verificationCode=None)
    return json_response(render(await _save(request, name, doc, stored.etag)))
