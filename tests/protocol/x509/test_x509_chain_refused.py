"""verify_chain refuses: every check, with the exact message and nothing about other anchors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from x509_factory import (
    CA_USAGE,
    LEAF_USAGE,
    NOW,
    SERVER_AUTH,
    Hierarchy,
    Issued,
    PrivateKey,
    intermediate,
    key_for,
    leaf,
    make,
    name,
    root,
)
from x509_verify import accept, anchor, reject

from opendps.protocol.x509 import ChainCheck, ChainError
from opendps.protocol.x509.certificates import PARSE_ERRORS, check_parsable
from opendps.protocol.x509.chain import MAX_PATH_LENGTH, MAX_PRESENTED


def test_nothing_presented() -> None:
    error = reject([], [], ChainCheck.NO_CERTIFICATE)
    assert error.subject is None
    assert str(error) == "no certificate was presented"


def test_expired_leaf(pki: Hierarchy) -> None:
    device = leaf("dev-old", pki.intermediate, not_before=timedelta(days=-60),
                  not_after=timedelta(days=-1))
    error = reject([device, pki.intermediate], [anchor(pki.root)], ChainCheck.EXPIRED)
    assert str(error) == "certificate 'CN=dev-old' expired at 2026-02-28T12:00:00.0000000Z"
    assert error.subject == "CN=dev-old"


def test_not_yet_valid_leaf(pki: Hierarchy) -> None:
    device = leaf("dev-new", pki.intermediate, not_before=timedelta(hours=2))
    error = reject([device, pki.intermediate], [anchor(pki.root)], ChainCheck.NOT_YET_VALID)
    assert str(error) == (
        "certificate 'CN=dev-new' is not valid before 2026-03-01T14:00:00.0000000Z"
    )


def test_expired_intermediate(pki: Hierarchy) -> None:
    middle = intermediate("Stale Intermediate", pki.root, not_before=timedelta(days=-90),
                          not_after=timedelta(days=-2))
    device = leaf("dev-01", middle)
    error = reject([device, middle], [anchor(pki.root)], ChainCheck.EXPIRED)
    assert str(error) == (
        "certificate 'CN=Stale Intermediate' expired at 2026-02-27T12:00:00.0000000Z"
    )
    assert error.subject == "CN=Stale Intermediate"


def test_expired_anchor() -> None:
    top = root("Expired Root", not_before=timedelta(days=-90), not_after=timedelta(days=-3))
    device = leaf("dev-01", top)
    error = reject([device], [anchor(top)], ChainCheck.EXPIRED)
    assert str(error) == "certificate 'CN=Expired Root' expired at 2026-02-26T12:00:00.0000000Z"


def test_leaf_signed_by_an_unknown_ca(pki: Hierarchy) -> None:
    stranger = root("Fabrikam Root")
    device = leaf("dev-01", stranger)
    error = reject([device], [anchor(pki.root)], ChainCheck.UNTRUSTED_ISSUER)
    assert str(error) == (
        "the issuer 'CN=Fabrikam Root' of certificate 'CN=dev-01' was not presented and is "
        "neither a verified CA certificate nor an enrollment group's certificate"
    )
    assert error.subject == "CN=dev-01"


def test_chain_missing_the_intermediate(pki: Hierarchy) -> None:
    error = reject([pki.device], [anchor(pki.root)], ChainCheck.UNTRUSTED_ISSUER)
    assert "the issuer 'CN=Contoso Intermediate' of certificate 'CN=dev-01' was not presented" \
        in str(error)


def test_unverified_root_is_not_trusted(pki: Hierarchy) -> None:
    stranger = root("Unverified Root")
    error = reject([pki.device, pki.intermediate, pki.root], [anchor(stranger, "ca:other")],
                   ChainCheck.UNTRUSTED_ISSUER)
    assert str(error) == (
        "certificate 'CN=Contoso Root' is self-signed and is neither a verified CA certificate "
        "nor an enrollment group's certificate"
    )
    assert "Unverified" not in str(error)


def test_unverified_root_not_presented(pki: Hierarchy) -> None:
    error = reject([pki.device, pki.intermediate], [], ChainCheck.UNTRUSTED_ISSUER)
    assert "the issuer 'CN=Contoso Root' of certificate 'CN=Contoso Intermediate'" in str(error)


def test_intermediate_with_ca_false(pki: Hierarchy) -> None:
    middle = intermediate("Not A CA", pki.root, ca=False)
    error = reject([leaf("dev-01", middle), middle], [anchor(pki.root)], ChainCheck.NOT_A_CA)
    assert str(error) == "certificate 'CN=Not A CA' is not a CA (basicConstraints CA:FALSE)"
    assert error.subject == "CN=Not A CA"


def test_intermediate_without_basic_constraints(pki: Hierarchy) -> None:
    middle = intermediate("No Constraints", pki.root, ca=None)
    error = reject([leaf("dev-01", middle), middle], [anchor(pki.root)], ChainCheck.NOT_A_CA)
    assert str(error) == (
        "certificate 'CN=No Constraints' is not a CA (no basicConstraints extension)"
    )


def test_anchor_that_is_not_a_ca(pki: Hierarchy) -> None:
    top = root("Leafy Root", ca=False)
    reject([leaf("dev-01", top)], [anchor(top)], ChainCheck.NOT_A_CA)


def test_pathlen_exceeded() -> None:
    top = root("Strict Root", pathlen=0)
    middle = intermediate("Strict Intermediate", top)
    error = reject([leaf("dev-01", middle), middle], [anchor(top)], ChainCheck.PATHLEN_EXCEEDED)
    assert str(error) == (
        "certificate 'CN=Strict Root' allows 0 intermediate CAs below it (pathlen) "
        "but the chain has 1"
    )
    assert error.subject == "CN=Strict Root"


def test_pathlen_exceeded_on_an_intermediate() -> None:
    top = root("Deep Root")
    upper = intermediate("Deep Upper", top, pathlen=0)
    lower = intermediate("Deep Lower", upper)
    error = reject([leaf("dev-01", lower), lower, upper], [anchor(top)],
                   ChainCheck.PATHLEN_EXCEEDED)
    assert error.subject == "CN=Deep Upper"


def test_common_name_differs_from_the_registration_id(pki: Hierarchy) -> None:
    device = leaf("dev-02", pki.intermediate)
    error = reject([device, pki.intermediate], [anchor(pki.root)],
                   ChainCheck.COMMON_NAME_MISMATCH, registration_id="dev-01")
    assert str(error) == (
        "the common name 'dev-02' of certificate 'CN=dev-02' does not match the "
        "registration ID 'dev-01'"
    )


# cryptography warns when it parses a CN over 64 characters; that is the point here.
@pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")
def test_common_name_over_64_characters(pki: Hierarchy) -> None:
    cn = "d" * 65
    error = reject([leaf(cn, pki.intermediate), pki.intermediate], [anchor(pki.root)],
                   ChainCheck.COMMON_NAME_TOO_LONG, registration_id=cn)
    assert "is 65 characters long" in str(error)
    assert "limited to 64" in str(error)


def test_no_common_name(pki: Hierarchy) -> None:
    device = make(None, pki.intermediate, key_label="no-cn",
                  subject=name(None, (NameOID.ORGANIZATION_NAME, "Contoso")))
    error = reject([device, pki.intermediate], [anchor(pki.root)], ChainCheck.NO_COMMON_NAME)
    assert str(error).startswith("certificate 'O=Contoso' has no subject common name (CN)")


def test_forged_signature_under_a_presented_issuer(pki: Hierarchy) -> None:
    forged = leaf("dev-01", pki.intermediate, key_label="forged-leaf",
                  sign_with=key_for("attacker"))
    error = reject([forged, pki.intermediate], [anchor(pki.root)], ChainCheck.BAD_SIGNATURE)
    assert str(error) == (
        "the signature of certificate 'CN=dev-01' does not verify with the public key of its "
        "issuer 'CN=Contoso Intermediate'"
    )


def test_forged_signature_under_an_anchor_reads_like_an_unknown_issuer(pki: Hierarchy) -> None:
    """Right issuer name, wrong key, issuer not presented: no hint that the anchor exists."""
    forged = leaf("dev-01", pki.root, key_label="forged-leaf", sign_with=key_for("attacker"))
    with_anchor = reject([forged], [anchor(pki.root)], ChainCheck.UNTRUSTED_ISSUER)
    without_anchor = reject([forged], [], ChainCheck.UNTRUSTED_ISSUER)
    assert str(with_anchor) == str(without_anchor)


def test_same_name_root_with_another_key_reads_like_no_anchor(pki: Hierarchy) -> None:
    impostor = make("Contoso Root", None, key_label="impostor-root", ca=True, usage=CA_USAGE)
    device = leaf("dev-01", impostor)
    with_anchor = reject([device, impostor], [anchor(pki.root)], ChainCheck.UNTRUSTED_ISSUER)
    without_anchor = reject([device, impostor], [], ChainCheck.UNTRUSTED_ISSUER)
    assert str(with_anchor) == str(without_anchor)


def test_leaf_for_server_authentication_only(pki: Hierarchy) -> None:
    device = leaf("dev-01", pki.intermediate, eku=[SERVER_AUTH])
    error = reject([device, pki.intermediate], [anchor(pki.root)],
                   ChainCheck.EXTENDED_KEY_USAGE)
    assert str(error).startswith(
        "certificate 'CN=dev-01' has an extendedKeyUsage without clientAuth "
        "(it allows serverAuth)"
    )


def test_leaf_key_usage_without_digital_signature(pki: Hierarchy) -> None:
    device = leaf("dev-01", pki.intermediate, usage=frozenset({"key_encipherment"}))
    error = reject([device, pki.intermediate], [anchor(pki.root)], ChainCheck.KEY_USAGE)
    assert str(error).startswith(
        "certificate 'CN=dev-01' has a keyUsage without digitalSignature"
    )


def test_issuer_key_usage_without_key_cert_sign(pki: Hierarchy) -> None:
    middle = intermediate("No CertSign", pki.root, usage=LEAF_USAGE)
    error = reject([leaf("dev-01", middle), middle], [anchor(pki.root)], ChainCheck.KEY_USAGE)
    assert str(error).startswith("certificate 'CN=No CertSign' has a keyUsage without keyCertSign")


def test_too_many_certificates_presented(pki: Hierarchy) -> None:
    presented = [pki.device] + [pki.intermediate] * MAX_PRESENTED
    error = reject(presented, [anchor(pki.root)], ChainCheck.CHAIN_TOO_LONG)
    assert str(error) == "21 certificates were presented; at most 20 are accepted"


def test_path_too_long() -> None:
    chain = [root("Tall Root")]
    for level in range(MAX_PATH_LENGTH - 1):
        chain.append(intermediate(f"Tall {level}", chain[-1]))
    device = leaf("dev-tall", chain[-1])  # path would be 11 certificates
    error = reject([device, *chain[1:]], [anchor(chain[0])], ChainCheck.CHAIN_TOO_LONG)
    assert "longer than 10 certificates" in str(error)
    # One level less fits.
    shorter = leaf("dev-tall", chain[-2])
    assert len(accept([shorter, *chain[1:-1]], [anchor(chain[0])]).path) == MAX_PATH_LENGTH


def test_a_loop_of_cross_certificates() -> None:
    key_a, key_b = key_for("loop-a"), key_for("loop-b")
    name_a, name_b = name("Loop A"), name("Loop B")
    a_by_b = Issued(_cross(name_a, key_a, name_b, key_b), key_a)
    b_by_a = Issued(_cross(name_b, key_b, name_a, key_a), key_b)
    device = leaf("dev-loop", a_by_b)
    error = reject([device, a_by_b, b_by_a], [], ChainCheck.UNTRUSTED_ISSUER)
    assert "(a loop)" in str(error)


def _cross(
    subject: x509.Name, key: PrivateKey, issuer: x509.Name, issuer_key: PrivateKey
) -> x509.Certificate:
    """A CA certificate for ``subject`` signed by ``issuer_key`` (for building loops)."""
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    )


def test_messages_never_name_anchors_off_the_path(pki: Hierarchy) -> None:
    secret = root("Secret Group Root")
    secret_group = intermediate("Secret Group Intermediate", secret)
    anchors = [anchor(secret, "ca:secret"), anchor(secret_group, "group:secret"),
               anchor(pki.root)]
    stranger = root("Fabrikam Root")
    failures = [
        [leaf("dev-01", stranger)],
        [pki.device],
        [leaf("dev-01", pki.intermediate, eku=[SERVER_AUTH]), pki.intermediate],
        [pki.device, make("Contoso Intermediate", stranger, key_label="impostor", ca=True)],
    ]
    for presented in failures:
        with pytest.raises(ChainError) as info:
            accept(presented, anchors)
        assert "Secret" not in str(info.value)


def test_clock_must_be_timezone_aware(pki: Hierarchy) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        accept([pki.device], [anchor(pki.root)], now=NOW.replace(tzinfo=None))


def test_checks_run_leaf_first(pki: Hierarchy) -> None:
    """An expired leaf from an unknown CA is reported as expired: the device's own fault first."""
    stranger = root("Fabrikam Root")
    device = leaf("dev-01", stranger, not_before=timedelta(days=-60), not_after=timedelta(days=-1))
    reject([device], [anchor(pki.root)], ChainCheck.EXPIRED)


# The search for a broken variant passes through negative serials, which cryptography warns about.
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_a_presented_certificate_that_does_not_decode(pki: Hierarchy) -> None:
    """cryptography parses lazily, so a broken name or extension surfaces only when read."""
    broken = _lazily_broken(pki.intermediate.cert)
    error = reject([pki.device, Issued(broken, pki.intermediate.key)], [anchor(pki.root)],
                   ChainCheck.MALFORMED_CERTIFICATE)
    assert str(error) == "certificate 2 of the 2 presented cannot be decoded"


def _lazily_broken(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` with one byte changed so that it loads but a field fails to decode."""
    der = cert.public_bytes(serialization.Encoding.DER)
    for position in range(len(der)):
        for value in (0x00, 0xFF, 0x05):
            mutated = der[:position] + bytes([value]) + der[position + 1:]
            try:
                candidate = x509.load_der_x509_certificate(mutated)
            except PARSE_ERRORS:
                continue
            try:
                check_parsable(candidate)
            except PARSE_ERRORS:
                return candidate
    raise AssertionError("no lazily broken variant found")
