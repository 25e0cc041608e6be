"""Reading uploaded certificates and describing them the way Azure's ``X509CertificateInfo`` does.

Azure accepts "a .pem or .cer file" where "if choosing .cer file, only base-64 encoded
certificate is accepted" (seed-digest-4 item 37), and warns never to upload private keys (item
30). So the loaders take PEM or armourless base-64 DER, refuse raw binary DER with the
``openssl`` command that fixes it, and refuse anything holding a private key without ever
quoting the input back: error messages describe the input, they never contain it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ..timefmt import format_utc
from .names import format_name

# An uploaded certificate file or a device's chain is a few kilobytes; refuse megabytes early.
MAX_INPUT_BYTES = 1024 * 1024

_DER_HINT = (
    "upload it PEM- or base-64-encoded (.cer), e.g. "
    "`openssl x509 -inform der -in cert.der -out cert.pem`"
)
# Any PEM private key: PRIVATE KEY, ENCRYPTED PRIVATE KEY, RSA/EC/DSA/OPENSSH PRIVATE KEY.
_PRIVATE_KEY_MARKER = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,64})-----")
_PEM_END = re.compile(r"-----END ([A-Z0-9 ]{1,64})-----")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=]+")
_CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE"})
# Errors cryptography raises for input it cannot parse. ValueError covers ASN.1 errors; the
# x509 ones derive from Exception directly.
PARSE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


class CertificateFormatError(ValueError):
    """The input is not one (or a list of) certificate(s) in a format we accept."""


def _as_text(data: str | bytes) -> str:
    """Decode ``data``; binary DER (a certificate or a key) gets its own message."""
    if isinstance(data, str):
        if len(data) > MAX_INPUT_BYTES:
            raise CertificateFormatError(f"input is larger than {MAX_INPUT_BYTES} bytes")
        return data
    if len(data) > MAX_INPUT_BYTES:
        raise CertificateFormatError(f"input is larger than {MAX_INPUT_BYTES} bytes")
    if _is_der_certificate(data):
        raise CertificateFormatError(f"input is binary DER; {_DER_HINT}")
    if _is_der_private_key(data):
        raise CertificateFormatError(
            "input contains a private key (binary DER); upload only the certificate"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CertificateFormatError(
            "input is binary data, not a certificate: expected PEM "
            "(-----BEGIN CERTIFICATE-----) or a base-64 .cer; a .pfx/.p12 file holds a "
            f"private key and must not be uploaded; for a binary DER certificate, {_DER_HINT}"
        ) from None


def _is_der_certificate(der: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(der)
    except PARSE_ERRORS:
        return False
    return True


def _is_der_private_key(der: bytes) -> bool:
    if not der.startswith(b"\x30"):  # every DER key is a SEQUENCE; skip the parse otherwise
        return False
    try:
        serialization.load_der_private_key(der, password=None)
    except TypeError:  # "private key is encrypted": still a private key
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def check_parsable(cert: x509.Certificate) -> None:
    """Raise (ValueError & co., see ``PARSE_ERRORS``) unless every field we read decodes.

    cryptography parses names, extensions and the key lazily; forcing it here means a
    malformed certificate fails once, at the boundary, rather than deep inside a check.
    """
    _ = (cert.subject, cert.issuer, cert.extensions, cert.serial_number, cert.version)
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.public_key())


def load_der_certificate(der: bytes) -> x509.Certificate:
    """One DER certificate (e.g. from the TLS layer), fully parsed, or CertificateFormatError."""
    return _parse_der(der, "input")


def _parse_der(der: bytes, what: str) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
        check_parsable(cert)
    except PARSE_ERRORS:
        if _is_der_private_key(der):
            raise CertificateFormatError(
                f"{what} contains a private key; upload only the certificate"
            ) from None
        raise CertificateFormatError(f"{what} is not a valid X.509 certificate") from None
    return cert


def _decode_base64(body: str, what: str) -> bytes:
    compact = "".join(body.split())
    if not compact or not _BASE64_TEXT.fullmatch(compact):
        raise CertificateFormatError(f"{what} is not valid base-64")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise CertificateFormatError(f"{what} is not valid base-64") from None


def _load_all(data: str | bytes) -> list[x509.Certificate]:
    text = _as_text(data)
    if _PRIVATE_KEY_MARKER.search(text):
        raise CertificateFormatError(
            "input contains a private key; upload only the certificate"
        )
    if not text.strip():
        raise CertificateFormatError("input is empty; expected a PEM or base-64 certificate")
    if "-----BEGIN" not in text:
        # A .cer: base-64 of DER, no armour; line breaks and spaces allowed.
        der = _decode_base64(text, "input (no PEM header, read as a base-64 .cer)")
        return [_parse_der(der, "input (read as a base-64 .cer)")]
    certificates: list[x509.Certificate] = []
    labels: set[str] = set()
    for label, body in _pem_blocks(text):
        labels.add(label)
        if label in _CERTIFICATE_LABELS:
            what = f"certificate {len(certificates) + 1} of the input"
            certificates.append(_parse_der(_decode_base64(body, what), what))
    if not certificates:
        found = ", ".join(sorted(labels))
        raise CertificateFormatError(f"input has no certificate, only PEM blocks: {found}")
    return certificates


def _pem_blocks(text: str) -> list[tuple[str, str]]:
    """(label, body) of each PEM block, in order; text around the blocks is ignored.

    A linear scan (each BEGIN is paired with the next END) rather than one lazy regex, which
    would go quadratic on a megabyte of unterminated headers.
    """
    blocks: list[tuple[str, str]] = []
    position = 0
    while (begin := _PEM_BEGIN.search(text, position)) is not None:
        end = _PEM_END.search(text, begin.end())
        if end is None:
            raise CertificateFormatError(
                f"PEM block '{begin.group(1)}' of the input has no matching -----END line"
            )
        if end.group(1) != begin.group(1):
            raise CertificateFormatError(
                f"PEM block '{begin.group(1)}' of the input ends with '{end.group(1)}'"
            )
        blocks.append((begin.group(1), text[begin.end():end.start()]))
        position = end.end()
    if not blocks:
        raise CertificateFormatError("input has a '-----BEGIN' line that starts no PEM block")
    return blocks


def load_certificate(text: str | bytes) -> x509.Certificate:
    """One certificate from PEM or a base-64 ``.cer`` (whitespace allowed)."""
    certificates = _load_all(text)
    if len(certificates) > 1:
        raise CertificateFormatError(
            f"input contains {len(certificates)} certificates; expected exactly one"
        )
    return certificates[0]


def load_chain(text: str | bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle (or one base-64 ``.cer``), in the order given."""
    return _load_all(text)


def sha1_thumbprint(cert: x509.Certificate) -> str:
    """What Azure calls "Thumbprint": SHA-1 of the DER, upper-case hex, no separators."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # an identifier, not a security check


def sha256_thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def common_name(cert: x509.Certificate) -> str | None:
    """The subject CN, or None. With several CNs the first in encoding order wins, as in
    OpenSSL's ``X509_NAME_get_index_by_NID`` and Windows' ``CertFindRDNAttr``."""
    attributes = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes:
        return None
    value = attributes[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def subject_name(cert: x509.Certificate) -> str:
    """The subject as Azure shows it (``CN=dev-01, O=Contoso``); see ``names``."""
    return format_name(cert.subject)


def issuer_name(cert: x509.Certificate) -> str:
    return format_name(cert.issuer)


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def is_self_issued(cert: x509.Certificate) -> bool:
    """Subject equals issuer (RFC 5280 §6.1: such CAs don't count against pathLenConstraint)."""
    return cert.subject == cert.issuer


def is_self_signed(cert: x509.Certificate) -> bool:
    """Self-issued and signed by its own key: a root (or a self-signed device certificate)."""
    if not is_self_issued(cert):
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # InvalidSignature, or a key/algorithm cryptography can't verify
        return False
    return True


def serial_number_hex(cert: x509.Certificate) -> str:
    """The serial as .NET's ``X509Certificate2.SerialNumber``: the DER INTEGER's content bytes
    in upper-case hex, so a serial with its top bit set keeps its leading ``00``."""
    serial = cert.serial_number
    magnitude = serial if serial >= 0 else ~serial
    length = (magnitude.bit_length() + 8) // 8  # room for the sign bit, as DER encodes it
    return serial.to_bytes(length, "big", signed=True).hex().upper()


def certificate_info(cert: x509.Certificate) -> dict[str, Any]:
    """The wire ``X509CertificateInfo`` (protocol.md §4.3) the service fills in for uploads."""
    return {
        "subjectName": subject_name(cert),
        "sha1Thumbprint": sha1_thumbprint(cert),
        "sha256Thumbprint": sha256_thumbprint(cert),
        "issuerName": issuer_name(cert),
        "notBeforeUtc": format_utc(cert.not_valid_before_utc),
        "notAfterUtc": format_utc(cert.not_valid_after_utc),
        "serialNumber": serial_number_hex(cert),
        "version": cert.version.value + 1,  # v3 is encoded as 2
    }
