"""Certificates made to order for the X.509 tests: roots, intermediates, leaves and forgeries.

Keys are cached per (label, type), so a whole run generates a handful of keys. Times are
offsets from the fixed ``NOW`` that every test passes as the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

KeyType = Literal["rsa", "ec", "ed25519"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

CA_USAGE = frozenset({"digital_signature", "key_cert_sign", "crl_sign"})
LEAF_USAGE = frozenset({"digital_signature", "key_encipherment"})
_USAGE_FIELDS = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


@cache
def key_for(label: str, key_type: KeyType = "ec") -> PrivateKey:
    """One key per label and type for the whole session (RSA generation is the slow part)."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class Issued:
    """A certificate and the key it certifies (the key that signs what it issues)."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def name(cn: str | None, *extra: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    attributes = [x509.NameAttribute(oid, value) for oid, value in extra]
    if cn is not None:  # unvalidated: tests need CNs over the 64-character upper bound
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False))
    return x509.Name(attributes)


def make(
    cn: str | None,
    issuer: Issued | None = None,
    *,
    subject: x509.Name | None = None,
    key_type: KeyType = "ec",
    key_label: str | None = None,
    ca: bool | None = False,
    pathlen: int | None = None,
    usage: frozenset[str] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: timedelta = timedelta(days=-1),
    not_after: timedelta = timedelta(days=30),
    sign_with: PrivateKey | None = None,
    serial: int | None = None,
) -> Issued:
    """A certificate for ``cn`` issued by ``issuer`` (self-signed when None).

    ``ca=None`` leaves out basicConstraints; ``usage``/``eku`` None leaves out the extension;
    ``sign_with`` signs with another key while still naming ``issuer`` (a forgery).
    """
    key = key_for(key_label or f"{cn}", key_type)
    subject = subject if subject is not None else name(cn)
    issuer_name = issuer.cert.subject if issuer else subject
    signer = sign_with or (issuer.key if issuer else key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(NOW + not_before)
        .not_valid_after(NOW + not_after)
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True
        )
    if usage is not None:
        flags = {field: field in usage for field in _USAGE_FIELDS}
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer, algorithm), key)


def root(cn: str = "Contoso Root", **options: object) -> Issued:
    options = {"ca": True, "usage": CA_USAGE, **options}
    return make(cn, None, **options)  # type: ignore[arg-type]


def intermediate(cn: str, issuer: Issued, **options: object) -> Issued:
    options = {"ca": True, "usage": CA_USAGE, **options}
    return make(cn, issuer, **options)  # type: ignore[arg-type]


def leaf(cn: str | None, issuer: Issued, **options: object) -> Issued:
    options = {"ca": False, "usage": LEAF_USAGE, "eku": [CLIENT_AUTH], **options}
    return make(cn, issuer, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Hierarchy:
    """Root -> intermediate -> device, as in the DPS enrollment-group tutorial."""

    root: Issued
    intermediate: Issued
    device: Issued


def hierarchy(key_type: KeyType = "ec") -> Hierarchy:
    top = root("Contoso Root", key_type=key_type)
    middle = intermediate("Contoso Intermediate", top, key_type=key_type)
    return Hierarchy(top, middle, leaf("dev-01", middle, key_type=key_type))
