"""The X.509 part of an enrollment: certificates are stored as PEM with their computed
``info``; clients send ``certificate`` and the service fills ``info`` (protocol.md §4.3)."""

from __future__ import annotations

from typing import Any

from .errors import DpsError, ErrorCode
from .x509.certificates import (
    CertificateFormatError,
    certificate_info,
    load_certificate,
    to_pem,
)

SLOTS = ("primary", "secondary")


def _bad(message: str) -> DpsError:
    return DpsError(ErrorCode.ARGUMENT_INVALID, message)


def _certificates(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object with 'primary' and optionally 'secondary'")
    out: dict[str, Any] = {}
    for slot in SLOTS:
        entry = value.get(slot)
        if entry is None:
            continue
        text = entry.get("certificate") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise _bad(f"{where}.{slot}.certificate must be a PEM or base-64 certificate")
        try:
            cert = load_certificate(text)
        except CertificateFormatError as exc:
            raise _bad(f"{where}.{slot}.certificate {exc}") from None
        out[slot] = {"certificate": to_pem(cert), "info": certificate_info(cert)}
    if "primary" not in out:
        raise _bad(f"{where}.primary is required")
    return out


def _ca_references(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not isinstance(value.get("primary"), str):
        raise _bad("x509.caReferences.primary must name an uploaded CA certificate")
    out = {"primary": value["primary"]}
    if isinstance(value.get("secondary"), str) and value["secondary"]:
        out["secondary"] = value["secondary"]
    return out


def validate_x509(value: Any, kind: str) -> dict[str, Any]:
    """Individual enrollments: ``clientCertificates`` or ``caReferences``; groups:
    ``signingCertificates`` or ``caReferences``. Exactly one of them."""
    if not isinstance(value, dict):
        raise _bad("attestation.x509 must be an object")
    own = "clientCertificates" if kind == "individual" else "signingCertificates"
    present = [k for k in (own, "caReferences") if value.get(k)]
    if len(present) != 1:
        raise _bad(f"attestation.x509 needs exactly one of {own} or caReferences")
    if present[0] == "caReferences":
        return {"caReferences": _ca_references(value["caReferences"])}
    return {own: _certificates(value[own], f"attestation.x509.{own}")}
