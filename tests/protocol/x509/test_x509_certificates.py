"""Loading uploads (PEM, base-64 .cer, and what we refuse) and X509CertificateInfo."""

from __future__ import annotations

import base64
import re
from functools import cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from x509_factory import Hierarchy, key_for, make, root

from opendps.protocol.x509 import (
    CertificateFormatError,
    certificate_info,
    common_name,
    format_name,
    is_self_signed,
    load_certificate,
    load_chain,
    sha1_thumbprint,
    sha256_thumbprint,
    to_pem,
)
from opendps.protocol.x509.certificates import load_der_certificate, serial_number_hex
from opendps.protocol.x509.names import quoted

AZURE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _cer(cert: x509.Certificate, width: int = 64) -> str:
    """A base-64 .cer as Windows exports it: no armour, wrapped lines."""
    text = base64.b64encode(_der(cert)).decode()
    return "\r\n".join(text[i:i + width] for i in range(0, len(text), width)) + "\r\n"


def _key_pem(encryption: serialization.KeySerializationEncryption | None = None,
             fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> str:
    key = key_for("dev-01")
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             encryption or serialization.NoEncryption()).decode()


# --- accepted formats ------------------------------------------------------------------------


def test_pem_text_and_bytes(pki: Hierarchy) -> None:
    assert load_certificate(pki.device.pem) == pki.device.cert
    assert load_certificate(pki.device.pem.encode()) == pki.device.cert


def test_pem_with_a_byte_order_mark_and_explanatory_text(pki: Hierarchy) -> None:
    text = "Bag Attributes\n    friendlyName: dev-01\nsubject=CN = dev-01\n" + pki.device.pem
    assert load_certificate(b"\xef\xbb\xbf" + text.encode()) == pki.device.cert


def test_base64_cer_text_and_bytes(pki: Hierarchy) -> None:
    assert load_certificate(_cer(pki.root.cert)) == pki.root.cert
    assert load_certificate(_cer(pki.root.cert, width=76).encode()) == pki.root.cert
    one_line = base64.b64encode(_der(pki.root.cert)).decode()
    assert load_certificate(f"  {one_line}\n") == pki.root.cert


def test_chain_bundle_keeps_its_order(pki: Hierarchy) -> None:
    bundle = pki.device.pem + pki.intermediate.pem + "\n" + pki.root.pem
    assert load_chain(bundle) == [pki.device.cert, pki.intermediate.cert, pki.root.cert]
    assert load_chain(_cer(pki.root.cert)) == [pki.root.cert]


def test_to_pem_round_trips(pki: Hierarchy) -> None:
    text = to_pem(pki.device.cert)
    assert text.startswith("-----BEGIN CERTIFICATE-----\n")
    assert load_certificate(text) == pki.device.cert


# --- refusals --------------------------------------------------------------------------------


def test_binary_der_is_refused_with_the_conversion_command(pki: Hierarchy) -> None:
    with pytest.raises(CertificateFormatError) as info:
        load_certificate(_der(pki.device.cert))
    message = str(info.value)
    assert "is binary DER" in message
    assert "openssl x509 -inform der -in cert.der -out cert.pem" in message


@pytest.mark.parametrize(
    "key_text",
    [
        pytest.param(lambda: _key_pem(), id="pkcs8"),
        pytest.param(lambda: _key_pem(fmt=serialization.PrivateFormat.TraditionalOpenSSL),
                     id="traditional"),
        pytest.param(lambda: _key_pem(serialization.BestAvailableEncryption(b"1234")),
                     id="encrypted"),
    ],
)
def test_a_private_key_is_refused_and_never_echoed(pki: Hierarchy, key_text) -> None:  # type: ignore[no-untyped-def]
    key_pem = key_text()
    body_lines = [line for line in key_pem.splitlines() if line and "-----" not in line]
    for upload in (pki.device.pem + key_pem, key_pem + pki.device.pem, key_pem):
        for loader in (load_certificate, load_chain):
            with pytest.raises(CertificateFormatError) as info:
                loader(upload)
            message = str(info.value)
            assert "contains a private key; upload only the certificate" in message
            assert not any(line in message for line in body_lines)
            assert not any(line[:16] in message for line in body_lines)


def test_a_binary_private_key_is_refused() -> None:
    der = key_for("dev-01").private_bytes(serialization.Encoding.DER,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
    with pytest.raises(CertificateFormatError, match="contains a private key"):
        load_certificate(der)
    with pytest.raises(CertificateFormatError, match="contains a private key"):
        load_certificate(base64.b64encode(der))


def test_two_certificates_where_one_is_expected(pki: Hierarchy) -> None:
    with pytest.raises(CertificateFormatError, match="contains 2 certificates; expected exactly"):
        load_certificate(pki.device.pem + pki.intermediate.pem)


@pytest.mark.parametrize(
    ("upload", "words"),
    [
        ("", "is empty"),
        ("  \r\n\t", "is empty"),
        ("hello, world", "not valid base-64"),
        ("aGVsbG8gd29ybGQ=", "not a valid X.509 certificate"),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n", "has no matching -----END line"),
        ("-----BEGIN certificate-----\nMIIB\n", "starts no PEM block"),
        ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not valid base-64"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         "certificate 1 of the input is not a valid X.509 certificate"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
         "no certificate, only PEM blocks: PUBLIC KEY"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n", "ends with"),
        (b"\x00\xff\xfe binary", "binary data, not a certificate"),
    ],
)
def test_garbage(upload: str | bytes, words: str) -> None:
    for loader in (load_certificate, load_chain):
        with pytest.raises(CertificateFormatError, match=re.escape(words)):
            loader(upload)


def test_oversized_input() -> None:
    with pytest.raises(CertificateFormatError, match="larger than"):
        load_chain("A" * (1024 * 1024 + 1))


_PEM_PREFIXES = st.sampled_from([
    "", "-----BEGIN CERTIFICATE-----\n", "-----BEGIN PRIVATE KEY-----\n",
    "-----BEGIN CERTIFICATE-----\nMII", "MII",
])
_PEM_SUFFIXES = st.sampled_from(["", "\n-----END CERTIFICATE-----\n", "=", "=="])


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=600),
        st.text(max_size=600),
        st.builds(lambda a, b, c: a + b + c, _PEM_PREFIXES,
                  st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789+/=\n -", max_size=600),
                  _PEM_SUFFIXES),
        st.builds(lambda head, tail: b"\x30\x82" + head + tail,
                  st.binary(min_size=2, max_size=2), st.binary(max_size=600)),
    )
)
def test_loaders_only_raise_certificate_format_error(data: str | bytes) -> None:
    for loader in (load_certificate, load_chain):
        try:
            loader(data)
        except CertificateFormatError:
            pass


@cache
def _fuzz_seed() -> bytes:
    """One fixed certificate to corrupt (the same bytes every example, as hypothesis needs)."""
    return _der(root("Fuzz Root", serial=77).cert)


@settings(max_examples=150, deadline=None, database=None)
@given(st.data())
def test_corrupted_certificates_only_raise_certificate_format_error(data: st.DataObject) -> None:
    der = bytearray(_fuzz_seed())
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(der)))
    pem = "-----BEGIN CERTIFICATE-----\n" + base64.b64encode(bytes(der[:cut])).decode()
    for upload in (pem + "\n-----END CERTIFICATE-----\n", base64.b64encode(bytes(der[:cut]))):
        try:
            load_certificate(upload)
        except CertificateFormatError:
            pass


# --- X509CertificateInfo and helpers ---------------------------------------------------------


def test_certificate_info_fields(pki: Hierarchy) -> None:
    cert = pki.device.cert
    info = certificate_info(cert)
    assert set(info) == {"subjectName", "sha1Thumbprint", "sha256Thumbprint", "issuerName",
                         "notBeforeUtc", "notAfterUtc", "serialNumber", "version"}
    assert info["subjectName"] == "CN=dev-01"
    assert info["issuerName"] == "CN=Contoso Intermediate"
    assert info["sha1Thumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert info["sha256Thumbprint"] == cert.fingerprint(hashes.SHA256()).hex().upper()
    assert info["sha1Thumbprint"] == sha1_thumbprint(cert)
    assert info["sha256Thumbprint"] == sha256_thumbprint(cert)
    assert len(info["sha1Thumbprint"]) == 40
    assert info["notBeforeUtc"] == "2026-02-28T12:00:00.0000000Z"
    assert info["notAfterUtc"] == "2026-03-31T12:00:00.0000000Z"
    assert AZURE_TIME.match(info["notBeforeUtc"])
    assert AZURE_TIME.match(info["notAfterUtc"])
    assert info["version"] == 3
    assert int(info["serialNumber"], 16) == cert.serial_number
    assert info["serialNumber"] == info["serialNumber"].upper()


@pytest.mark.parametrize(
    ("serial", "expected"),
    [(1, "01"), (0x7F, "7F"), (0x80, "0080"), (0x1234, "1234"), (0x8A00FF, "008A00FF")],
)
def test_serial_number_is_spelled_like_dotnet(serial: int, expected: str) -> None:
    cert = make(f"serial-{serial}", None, key_label="serials", serial=serial).cert
    assert serial_number_hex(cert) == expected


def test_subject_most_specific_first_as_azure_shows_it() -> None:
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso"),
        x509.NameAttribute(NameOID.COMMON_NAME, "my-device"),
    ])
    cert = make("my-device", None, subject=subject).cert
    assert certificate_info(cert)["subjectName"] == "CN=my-device, O=Contoso, S=WA, C=US"
    assert certificate_info(cert)["issuerName"] == "CN=my-device, O=Contoso, S=WA, C=US"


def test_name_formatting_quotes_and_unknown_attributes() -> None:
    name = x509.Name([
        x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Line 1"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Line 2"),
        ]),
        x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Contoso, "Ltd"'),
        ]),
        x509.RelativeDistinguishedName([
            x509.NameAttribute(x509.ObjectIdentifier("1.2.3.4"), " padded"),
        ]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "dev-01")]),
    ])
    assert format_name(name) == (
        'CN=dev-01, OID.1.2.3.4=" padded", O="Contoso, ""Ltd""", OU=Line 1 + OU=Line 2'
    )


def test_common_name(pki: Hierarchy) -> None:
    assert common_name(pki.device.cert) == "dev-01"
    no_cn = make(None, None, key_label="no-cn-self",
                 subject=x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso")]))
    assert common_name(no_cn.cert) is None


def test_is_self_signed(pki: Hierarchy) -> None:
    assert is_self_signed(pki.root.cert)
    assert not is_self_signed(pki.intermediate.cert)
    assert not is_self_signed(pki.device.cert)
    # Self-issued (subject == issuer) but signed by another key: not self-signed.
    other = make("Contoso Root", pki.root, key_label="rolled-root", ca=True)
    assert not is_self_signed(other.cert)


def test_load_der_certificate_for_the_tls_layer(pki: Hierarchy) -> None:
    assert load_der_certificate(_der(pki.device.cert)) == pki.device.cert
    with pytest.raises(CertificateFormatError, match=r"not a valid X\.509 certificate"):
        load_der_certificate(b"\x30\x03\x02\x01\x01")


def test_quoted_escapes_control_characters() -> None:
    assert quoted("dev-01\nFAKE LOG LINE") == "'dev-01\\nFAKE LOG LINE'"
    assert quoted("Gerät") == "'Gerät'"
