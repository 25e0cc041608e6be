"""Reading certificates from the bytes of a file: PEM with one or more certificates, a
base-64 ``.cer`` without PEM armour, DER, or PKCS#12/PFX (with its password)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import CertError, WrongPasswordError
from .keys import PrivateKey

_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """What a certificate file held, in file order; ``key`` only for a PFX that has one."""

    format: str  # "PEM", "BASE64", "DER" or "PFX"
    certificates: tuple[x509.Certificate, ...]
    key: PrivateKey | None = None


def _is_pfx(der: bytes) -> bool:
    """PFX is SEQUENCE { version INTEGER 3, ... }; a certificate is SEQUENCE { SEQUENCE ... }."""
    if len(der) < 4 or der[0] != 0x30:
        return False
    length = der[1]
    offset = 2 + (length & 0x7F if length & 0x80 else 0)
    return der[offset:offset + 3] == b"\x02\x01\x03"


def load_certificate_file(data: bytes, password: str | bytes | None = None) -> LoadedFile:
    """Every certificate in a file, whatever of the usual formats it is in."""
    if b"-----BEGIN" in data:
        if b"CERTIFICATE-----" not in data:
            raise CertError("the PEM file holds no certificate (a key or a request?)")
        try:
            return LoadedFile("PEM", tuple(x509.load_pem_x509_certificates(data)))
        except ValueError:
            raise CertError("the PEM file holds a malformed certificate") from None
    fmt = "DER"
    stripped = data.strip()
    if stripped and _BASE64.match(stripped):
        try:
            data = base64.b64decode(b"".join(stripped.split()), validate=True)
            fmt = "BASE64"
        except (binascii.Error, ValueError):
            raise CertError("not a certificate file (PEM, .cer, DER or PFX)") from None
    if _is_pfx(data):
        return _load_pfx(data, password)
    try:
        return LoadedFile(fmt, (x509.load_der_x509_certificate(data),))
    except ValueError:
        raise CertError("not a certificate file (PEM, .cer, DER or PFX)") from None


def _load_pfx(data: bytes, password: str | bytes | None) -> LoadedFile:
    secret = password.encode() if isinstance(password, str) else password
    try:
        loaded = pkcs12.load_pkcs12(data, secret or None)
    except ValueError:
        if not secret:
            raise WrongPasswordError("the PFX file is protected: give its password") from None
        raise WrongPasswordError("wrong password for the PFX file (or it is corrupt)") from None
    certs: list[x509.Certificate] = []
    if loaded.cert is not None:
        certs.append(loaded.cert.certificate)
    certs.extend(c.certificate for c in loaded.additional_certs)
    if not certs:
        raise CertError("the PFX file holds no certificate")
    key = loaded.key
    return LoadedFile("PFX", tuple(certs),
                      key if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
                      else None)


def load_certificates(data: bytes, password: str | bytes | None = None
                      ) -> list[x509.Certificate]:
    return list(load_certificate_file(data, password).certificates)


def load_certificate(data: bytes, password: str | bytes | None = None) -> x509.Certificate:
    """The first certificate of a file (a CA file may carry its chain after it)."""
    return load_certificate_file(data, password).certificates[0]
