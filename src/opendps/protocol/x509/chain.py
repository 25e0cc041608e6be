"""Judging a device's certificate chain the way Azure DPS does, and saying exactly why not.

The device presents its leaf and (usually) the intermediates above it. The caller supplies
the trust points it knows: verified CA certificates and enrollment groups' signing
certificates (root or intermediate). We build the path leaf -> ... -> the *first* trust point
reached, because "the service applies the first applicable entry that it finds" walking up
from the leaf (seed-digest-3 §G.6), and a chain that reaches no trust point is refused
(§G.5: "Authentication will fail if DPS cannot traverse the certificate chain to a verified
certificate"). Individual enrollments match the leaf by thumbprint elsewhere; leaves are
never trust points here.

Every certificate on the path is checked with RFC 5280's basics (validity window, CA flag,
pathLenConstraint, key usages), and every refusal is a ``ChainError`` whose ``check`` says
which rule failed. Messages name only certificates the device presented plus the one trust
point on the path, so an unknown device learns nothing about which other trust points exist:
an issuer that matches a trust point by name but not by signature reads exactly like an
issuer that matches nothing.

Certificate names compare as cryptography's ``x509.Name`` equality (the encoded attributes,
as ``verify_directly_issued_by`` requires), not with RFC 5280's case-folding.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..timefmt import format_utc
from .certificates import (
    PARSE_ERRORS,
    check_parsable,
    common_name,
    is_self_issued,
    issuer_name,
    subject_name,
)
from .names import quoted as _q

# X.509 registration IDs are limited to 64 characters because the CN is (seed-digest-3 item 3).
MAX_COMMON_NAME = 64
# Certificates on the path, leaf and trust point included. Real chains have 2 to 4.
MAX_PATH_LENGTH = 10
# Certificates a device may present; extra ones are tolerated (order, duplicates) up to this.
MAX_PRESENTED = 20

_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

_TRUST_POINT = "a verified CA certificate nor an enrollment group's certificate"
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}


class ChainCheck(enum.Enum):
    """The rule a chain broke; callers map these to status codes and audit entries."""

    NO_CERTIFICATE = "no_certificate"  # nothing presented
    NO_COMMON_NAME = "no_common_name"  # the leaf has no subject CN
    COMMON_NAME_TOO_LONG = "common_name_too_long"  # leaf CN over 64 characters
    COMMON_NAME_MISMATCH = "common_name_mismatch"  # leaf CN is not the registration ID
    EXPIRED = "expired"  # a certificate on the path is past notAfter
    NOT_YET_VALID = "not_yet_valid"  # a certificate on the path is before notBefore
    UNTRUSTED_ISSUER = "untrusted_issuer"  # the path reaches no trust point
    BAD_SIGNATURE = "bad_signature"  # a presented issuer's key did not sign the certificate
    NOT_A_CA = "not_a_ca"  # an issuer lacks basicConstraints CA:TRUE
    PATHLEN_EXCEEDED = "pathlen_exceeded"  # too many intermediate CAs below an issuer
    KEY_USAGE = "key_usage"  # keyUsage lacks keyCertSign (issuer) or digitalSignature (leaf)
    EXTENDED_KEY_USAGE = "extended_key_usage"  # leaf extendedKeyUsage lacks clientAuth
    CHAIN_TOO_LONG = "chain_too_long"  # over MAX_PRESENTED presented or MAX_PATH_LENGTH deep
    MALFORMED_CERTIFICATE = "malformed_certificate"  # a presented certificate does not decode


class ChainError(Exception):
    """A refused chain: ``check`` is the rule, ``subject`` the failing certificate's subject."""

    def __init__(self, check: ChainCheck, message: str, *, subject: str | None) -> None:
        super().__init__(message)
        self.check = check
        self.subject = subject


@dataclass(frozen=True)
class Anchor:
    """A trust point; ``key`` is the caller's opaque label (``"group:line-1"``, ``"ca:root"``)."""

    certificate: x509.Certificate
    key: str


@dataclass(frozen=True)
class VerifiedChain:
    """An accepted chain: ``path`` runs from the leaf up to ``anchor.certificate``."""

    anchor: Anchor
    path: list[x509.Certificate]

    @property
    def leaf(self) -> x509.Certificate:
        return self.path[0]


def verify_chain(
    presented: list[x509.Certificate],
    anchors: Sequence[Anchor],
    *,
    now: datetime,
    registration_id: str | None,
) -> VerifiedChain:
    """Accept ``presented`` (leaf first, then intermediates in any order) or raise ChainError."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not presented:
        raise ChainError(ChainCheck.NO_CERTIFICATE, "no certificate was presented", subject=None)
    leaf = presented[0]
    if len(presented) > MAX_PRESENTED:
        raise ChainError(
            ChainCheck.CHAIN_TOO_LONG,
            f"{len(presented)} certificates were presented; at most {MAX_PRESENTED} are accepted",
            subject=None,
        )
    for position, cert in enumerate(presented, start=1):
        try:
            check_parsable(cert)
        except PARSE_ERRORS:
            raise ChainError(
                ChainCheck.MALFORMED_CERTIFICATE,
                f"certificate {position} of the {len(presented)} presented cannot be decoded",
                subject=None,
            ) from None
    _check_common_name(leaf, registration_id)
    _check_validity(leaf, now)
    _check_leaf_usage(leaf)

    pool: list[x509.Certificate] = []
    for cert in presented[1:]:
        if cert != leaf and cert not in pool:
            pool.append(cert)
    path = [leaf]
    current = leaf
    while True:
        if len(path) >= MAX_PATH_LENGTH:
            raise ChainError(
                ChainCheck.CHAIN_TOO_LONG,
                f"the chain above certificate {_q(subject_name(leaf))} is longer than "
                f"{MAX_PATH_LENGTH} certificates without reaching a verified CA certificate or "
                "an enrollment group's certificate",
                subject=subject_name(leaf),
            )
        issuer, anchor = _find_issuer(current, pool, anchors, path, now)
        path.append(issuer)
        _check_validity(issuer, now)
        _check_issuer(issuer, path)
        if anchor is not None:
            return VerifiedChain(anchor=anchor, path=path)
        current = issuer


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s name and key issued ``cert`` (RSA, EC, Ed25519, Ed448)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _valid_at(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _find_issuer(
    current: x509.Certificate,
    pool: list[x509.Certificate],
    anchors: Sequence[Anchor],
    path: list[x509.Certificate],
    now: datetime,
) -> tuple[x509.Certificate, Anchor | None]:
    """The issuer of ``current`` and, when it is a trust point, which one.

    Trust points come first: a presented certificate with the same subject and key as a trust
    point *is* that trust point (as in a trust store), and its signature check gives the same
    answer. Among several that verify, one valid at ``now`` wins (a re-issued root).
    """
    signing_anchors = [
        a for a in anchors
        if a.certificate.subject == current.issuer and _signed_by(current, a.certificate)
    ]
    if signing_anchors:
        anchor = sorted(signing_anchors, key=lambda a: not _valid_at(a.certificate, now))[0]
        return anchor.certificate, anchor

    named = [c for c in pool if c.subject == current.issuer]
    unused = [c for c in named if c not in path]
    signing = sorted((c for c in unused if _signed_by(current, c)),
                     key=lambda c: not _valid_at(c, now))
    if signing:
        return signing[0], None
    subject = subject_name(current)
    if is_self_issued(current) and _signed_by(current, current):
        message = f"certificate {_q(subject)} is self-signed and is neither {_TRUST_POINT}"
    elif unused:
        raise ChainError(
            ChainCheck.BAD_SIGNATURE,
            f"the signature of certificate {_q(subject)} does not verify with the public key "
            f"of its issuer {_q(subject_name(unused[0]))}",
            subject=subject,
        )
    elif named:
        message = (
            f"the issuer {_q(subject_name(named[0]))} of certificate {_q(subject)} already "
            f"appears lower in the chain (a loop), which reaches neither {_TRUST_POINT}"
        )
    else:
        message = (
            f"the issuer {_q(issuer_name(current))} of certificate {_q(subject)} was "
            f"not presented and is neither {_TRUST_POINT}"
        )
    raise ChainError(ChainCheck.UNTRUSTED_ISSUER, message, subject=subject)


def _check_validity(cert: x509.Certificate, now: datetime) -> None:
    if now > cert.not_valid_after_utc:
        raise ChainError(
            ChainCheck.EXPIRED,
            f"certificate {_q(subject_name(cert))} expired at "
            f"{format_utc(cert.not_valid_after_utc)}",
            subject=subject_name(cert),
        )
    if now < cert.not_valid_before_utc:
        raise ChainError(
            ChainCheck.NOT_YET_VALID,
            f"certificate {_q(subject_name(cert))} is not valid before "
            f"{format_utc(cert.not_valid_before_utc)}",
            subject=subject_name(cert),
        )


def _extension(
    cert: x509.Certificate, kind: type[_Ext], check: ChainCheck
) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except PARSE_ERRORS:  # duplicate or undecodable extensions (anchors skip check_parsable)
        raise ChainError(
            check,
            f"certificate {_q(subject_name(cert))} has malformed extensions",
            subject=subject_name(cert),
        ) from None


def _check_common_name(leaf: x509.Certificate, registration_id: str | None) -> None:
    subject = subject_name(leaf)
    cn = common_name(leaf)
    if not cn:
        raise ChainError(
            ChainCheck.NO_COMMON_NAME,
            f"certificate {_q(subject)} has no subject common name (CN); a device "
            "certificate's CN is its registration ID",
            subject=subject,
        )
    if len(cn) > MAX_COMMON_NAME:
        raise ChainError(
            ChainCheck.COMMON_NAME_TOO_LONG,
            f"the common name of certificate {_q(subject)} is {len(cn)} characters long; "
            f"X.509 registration IDs are limited to {MAX_COMMON_NAME}",
            subject=subject,
        )
    if registration_id is not None and cn.lower() != registration_id.lower():
        raise ChainError(
            ChainCheck.COMMON_NAME_MISMATCH,
            f"the common name {_q(cn)} of certificate {_q(subject)} does not match the "
            f"registration ID {_q(registration_id)}",
            subject=subject,
        )


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    subject = subject_name(leaf)
    usage = _extension(leaf, x509.KeyUsage, ChainCheck.KEY_USAGE)
    if usage is not None and not usage.digital_signature:
        raise ChainError(
            ChainCheck.KEY_USAGE,
            f"certificate {_q(subject)} has a keyUsage without digitalSignature, which a "
            "device certificate needs for TLS client authentication",
            subject=subject,
        )
    extended = _extension(leaf, x509.ExtendedKeyUsage, ChainCheck.EXTENDED_KEY_USAGE)
    if extended is None:
        return
    purposes = list(extended)
    if ExtendedKeyUsageOID.CLIENT_AUTH in purposes:
        return
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in purposes:
        return
    names = ", ".join(_EKU_NAMES.get(p, p.dotted_string) for p in purposes) or "nothing"
    raise ChainError(
        ChainCheck.EXTENDED_KEY_USAGE,
        f"certificate {_q(subject)} has an extendedKeyUsage without clientAuth (it allows "
        f"{names}); a device certificate must allow TLS client authentication",
        subject=subject,
    )


def _check_issuer(issuer: x509.Certificate, path: list[x509.Certificate]) -> None:
    """CA:TRUE, keyCertSign and pathLenConstraint for ``issuer``, the last entry of ``path``."""
    subject = subject_name(issuer)
    constraints = _extension(issuer, x509.BasicConstraints, ChainCheck.NOT_A_CA)
    if constraints is None or not constraints.ca:
        why = "basicConstraints CA:FALSE" if constraints else "no basicConstraints extension"
        raise ChainError(
            ChainCheck.NOT_A_CA, f"certificate {_q(subject)} is not a CA ({why})", subject=subject
        )
    usage = _extension(issuer, x509.KeyUsage, ChainCheck.KEY_USAGE)
    if usage is not None and not usage.key_cert_sign:
        raise ChainError(
            ChainCheck.KEY_USAGE,
            f"certificate {_q(subject)} has a keyUsage without keyCertSign, so it cannot "
            "issue certificates",
            subject=subject,
        )
    if constraints.path_length is None:
        return
    # RFC 5280 §4.2.1.9: self-issued intermediates don't count.
    below = sum(1 for cert in path[1:-1] if not is_self_issued(cert))
    if below > constraints.path_length:
        raise ChainError(
            ChainCheck.PATHLEN_EXCEEDED,
            f"certificate {_q(subject)} allows {constraints.path_length} intermediate CAs "
            f"below it (pathlen) but the chain has {below}",
            subject=subject,
        )
