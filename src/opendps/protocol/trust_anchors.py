"""Which certificates a device chain may end at: enrollment groups' signing certificates and
the verified CA certificates they reference (DPS), or every verified CA (the hub).

Pure: given stored documents, returns anchors. Disabled groups come first, so a certificate
that belongs to a disabled entry blocks devices even where an enabled entry shares it."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from cryptography import x509

from .x509.certificates import load_certificate
from .x509.chain import Anchor


@lru_cache(maxsize=4096)
def _parsed(text: str) -> x509.Certificate:
    """Every X.509 registration reads every group's certificates: parse each text once
    (certificates are immutable; a changed group brings new text, hence a new entry)."""
    return load_certificate(text)

GROUP_PREFIX = "group:"
CA_PREFIX = "ca:"


def ca_index(stored: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Stored CA certificates (``.key``, ``.doc``) by lower-cased name, each doc with its name."""
    return {c.key.lower(): dict(c.doc, name=c.key) for c in stored}


def _ca_cert(cas: dict[str, dict[str, Any]], name: str) -> Any | None:
    doc = cas.get(name.lower())
    if doc is None or not doc.get("isVerified"):
        return None  # an unverified CA is trusted by nobody
    return _parsed(doc["certificate"])


def group_anchors(groups: Iterable[tuple[str, dict[str, Any]]],
                  cas: dict[str, dict[str, Any]]) -> list[Anchor]:
    """``groups``: (group id, document) of X.509 enrollment groups."""
    ordered = sorted(groups, key=lambda g: g[1].get("provisioningStatus") == "enabled")
    anchors: list[Anchor] = []
    for group_id, doc in ordered:
        x509 = doc["attestation"].get("x509") or {}
        for slot in ("primary", "secondary"):
            signing = (x509.get("signingCertificates") or {}).get(slot)
            if signing:
                anchors.append(Anchor(_parsed(signing["certificate"]),
                                      GROUP_PREFIX + group_id))
            ref = (x509.get("caReferences") or {}).get(slot)
            cert = _ca_cert(cas, ref) if ref else None
            if cert is not None:
                anchors.append(Anchor(cert, GROUP_PREFIX + group_id))
    return anchors


def ca_anchors(cas: dict[str, dict[str, Any]], names: Iterable[str] | None = None
               ) -> list[Anchor]:
    """Verified CA certificates (all, or the named ones) as anchors keyed ``ca:{name}``."""
    wanted = [n.lower() for n in names] if names is not None else list(cas)
    anchors = []
    for name in wanted:
        cert = _ca_cert(cas, name)
        if cert is not None:
            anchors.append(Anchor(cert, CA_PREFIX + cas[name]["name"]))
    return anchors
