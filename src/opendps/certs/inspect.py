"""Describing certificates: what ``openssl x509 -noout -text`` and the Azure portal show, as
data. Thumbprints are upper-case hex like the portal's (DPS matches individual enrollments on
SHA-1 or SHA-256), times are UTC, and a file's certificates are checked as the chain it
presents: is each one signed by the next?"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from .keys import describe_key
from .load import load_certificate_file


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    issuer: str
    common_name: str | None
    serial: str  # upper-case hex
    sha1_thumbprint: str
    sha256_thumbprint: str
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    pathlen: int | None
    key_type: str  # "RSA" or "EC"
    key_size: int
    key: str  # "RSA 2048", "EC P-256"
    signature_algorithm: str
    extended_key_usage: tuple[str, ...]
    self_signed: bool
    signed_by_next: bool | None = None  # None for the last certificate of a file

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject, "issuer": self.issuer, "commonName": self.common_name,
            "serialNumber": self.serial, "sha1Thumbprint": self.sha1_thumbprint,
            "sha256Thumbprint": self.sha256_thumbprint,
            "notBefore": format_time(self.not_before), "notAfter": format_time(self.not_after),
            "isCa": self.is_ca, "pathLength": self.pathlen, "keyType": self.key_type,
            "keySize": self.key_size, "signatureAlgorithm": self.signature_algorithm,
            "extendedKeyUsage": list(self.extended_key_usage), "selfSigned": self.self_signed,
            "signedByNext": self.signed_by_next,
        }


@dataclass(frozen=True, slots=True)
class FileInfo:
    format: str  # "PEM", "BASE64", "DER" or "PFX"
    certificates: tuple[CertificateInfo, ...]
    has_private_key: bool = False

    @property
    def chain_intact(self) -> bool:
        """Every certificate is signed by the one after it (trivially true for one)."""
        return all(c.signed_by_next is not False for c in self.certificates)

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "hasPrivateKey": self.has_private_key,
                "chainIntact": self.chain_intact,
                "certificates": [c.to_json() for c in self.certificates]}


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def thumbprint(cert: x509.Certificate, algorithm: str = "sha1") -> str:
    """Upper-case hex digest of the DER certificate, as the portal and ``az`` print it."""
    digest = hashes.SHA1() if algorithm.lower() == "sha1" else hashes.SHA256()
    return cert.fingerprint(digest).hex().upper()


def is_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name is ``cert``'s issuer and its key made ``cert``'s signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    return name if name and name != "Unknown OID" else oid.dotted_string


def describe_certificate(cert: x509.Certificate,
                         signed_by_next: bool | None = None) -> CertificateInfo:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        constraints: x509.BasicConstraints | None = cert.extensions.get_extension_for_class(
            x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    try:
        eku = tuple(_oid_name(oid) for oid in
                    cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = ()
    key_type, key_size, key_label = describe_key(cert.public_key())  # type: ignore[arg-type]
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        common_name=str(names[0].value) if names else None,
        serial=format(cert.serial_number, "X"),
        sha1_thumbprint=thumbprint(cert, "sha1"), sha256_thumbprint=thumbprint(cert, "sha256"),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        is_ca=bool(constraints and constraints.ca),
        pathlen=constraints.path_length if constraints else None,
        key_type=key_type, key_size=key_size, key=key_label,
        signature_algorithm=_oid_name(cert.signature_algorithm_oid),
        extended_key_usage=eku,
        self_signed=cert.issuer == cert.subject and is_signed_by(cert, cert),
        signed_by_next=signed_by_next,
    )


def describe_chain(certs: list[x509.Certificate] | tuple[x509.Certificate, ...]
                   ) -> tuple[CertificateInfo, ...]:
    """Each certificate, with whether the next one in the list signed it."""
    return tuple(
        describe_certificate(cert, is_signed_by(cert, certs[i + 1]) if i + 1 < len(certs)
                             else None)
        for i, cert in enumerate(certs))


def describe_file(data: bytes, password: str | bytes | None = None) -> FileInfo:
    """Describe a certificate file's bytes (PEM, base-64 .cer, DER or PFX)."""
    loaded = load_certificate_file(data, password)
    return FileInfo(loaded.format, describe_chain(loaded.certificates),
                    has_private_key=loaded.key is not None)
