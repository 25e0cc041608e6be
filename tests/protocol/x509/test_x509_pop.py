"""Proof of possession: the verification certificate must carry the code and the CA's signature."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from x509_factory import NOW, Hierarchy, Issued, KeyType, key_for, make, root

from opendps.protocol.x509 import (
    PopCheck,
    PopError,
    check_verification_certificate,
    new_verification_code,
)

CODE = "62E8EC3D3E1D5F6F2BCE5DF9B6D2F2B13A1AB27F0A6E0A5B"


def verification(ca: Issued, cn: str | None = CODE, **options: object) -> Issued:
    """What the owner makes with openssl: CN=<code>, signed by the CA, not itself a CA."""
    return make(cn, ca, key_label="verification", ca=None, **options)  # type: ignore[arg-type]


def refuse(ca: Issued, proof: Issued, check: PopCheck, code: str = CODE) -> str:
    with pytest.raises(PopError) as info:
        check_verification_certificate(ca.cert, proof.cert, code, now=NOW)
    assert info.value.check is check, str(info.value)
    return str(info.value)


def test_new_verification_codes_are_48_upper_case_hex_digits() -> None:
    codes = {new_verification_code() for _ in range(50)}
    assert len(codes) == 50
    assert all(re.fullmatch(r"[0-9A-F]{48}", code) for code in codes)


@pytest.mark.parametrize("key_type", ["rsa", "ec", "ed25519"])
def test_right_code_signed_by_the_ca(key_type: KeyType) -> None:
    ca = root(f"PoP Root {key_type}", key_type=key_type)
    check_verification_certificate(ca.cert, verification(ca).cert, CODE, now=NOW)


def test_intermediate_ca_can_be_verified_too(pki: Hierarchy) -> None:
    proof = verification(pki.intermediate)
    check_verification_certificate(pki.intermediate.cert, proof.cert, CODE, now=NOW)


def test_code_case_does_not_matter(pki: Hierarchy) -> None:
    proof = verification(pki.root, CODE.lower())
    check_verification_certificate(pki.root.cert, proof.cert, CODE, now=NOW)


def test_wrong_common_name(pki: Hierarchy) -> None:
    message = refuse(pki.root, verification(pki.root, "Contoso Root"), PopCheck.CODE_MISMATCH)
    assert "common name 'Contoso Root' does not match the verification code" in message
    assert CODE in message


def test_no_common_name(pki: Hierarchy) -> None:
    message = refuse(pki.root, verification(pki.root, None), PopCheck.CODE_MISMATCH)
    assert "has no common name" in message
    assert CODE in message


def test_signed_by_another_key_claiming_the_ca_as_issuer(pki: Hierarchy) -> None:
    forged = verification(pki.root, sign_with=key_for("attacker"))
    message = refuse(pki.root, forged, PopCheck.WRONG_KEY)
    assert "names 'CN=Contoso Root' as its issuer" in message
    assert "signature does not verify" in message
    assert "wrong-key proof of possession" in message


def test_issued_by_another_ca(pki: Hierarchy) -> None:
    other = root("Fabrikam Root")
    message = refuse(pki.root, verification(other), PopCheck.WRONG_ISSUER)
    assert message == (
        "the verification certificate was issued by 'CN=Fabrikam Root', not by the CA "
        "certificate being verified ('CN=Contoso Root')"
    )


def test_expired_verification_certificate(pki: Hierarchy) -> None:
    stale = verification(pki.root, not_before=timedelta(days=-10), not_after=timedelta(days=-1))
    message = refuse(pki.root, stale, PopCheck.NOT_VALID)
    assert message == "the verification certificate expired at 2026-02-28T12:00:00.0000000Z"


def test_not_yet_valid_verification_certificate(pki: Hierarchy) -> None:
    early = verification(pki.root, not_before=timedelta(days=1))
    message = refuse(pki.root, early, PopCheck.NOT_VALID)
    assert message == (
        "the verification certificate is not valid before 2026-03-02T12:00:00.0000000Z"
    )


def test_clock_must_be_timezone_aware(pki: Hierarchy) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_verification_certificate(pki.root.cert, verification(pki.root).cert, CODE,
                                       now=NOW.replace(tzinfo=None))
