"""Proof of possession for an uploaded CA certificate (the ``generateVerificationCode`` and
``verify`` steps of the DPS/IoT Hub certificate API, protocol.md §5).

The owner asks for a code, makes a certificate whose subject CN is that code, signs it with
the CA's private key and uploads it. Accepting it proves they hold the key: the only thing
the check must get right is that the *CA's* key made the signature, not merely that the
verification certificate names the CA as its issuer.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from ..timefmt import format_utc
from .certificates import common_name, issuer_name, subject_name
from .names import quoted

# Azure's codes are 48 upper-case hex digits (24 random bytes). The format is not documented
# anywhere we have read; it is our choice, matching the codes Azure hands out.
VERIFICATION_CODE_BYTES = 24


class PopCheck(enum.Enum):
    """Which part of the proof failed."""

    CODE_MISMATCH = "code_mismatch"  # the subject CN is not the current verification code
    WRONG_ISSUER = "wrong_issuer"  # the issuer name is not the CA's subject
    WRONG_KEY = "wrong_key"  # names the CA as issuer, but the CA's key did not sign it
    NOT_VALID = "not_valid"  # expired or not yet valid at ``now``


class PopError(Exception):
    """The verification certificate does not prove possession of the CA's private key."""

    def __init__(self, check: PopCheck, message: str) -> None:
        super().__init__(message)
        self.check = check


def new_verification_code() -> str:
    """A fresh code: 48 upper-case hex characters from the OS's CSPRNG."""
    return secrets.token_hex(VERIFICATION_CODE_BYTES).upper()


def check_verification_certificate(
    ca: x509.Certificate, verification: x509.Certificate, code: str, *, now: datetime
) -> None:
    """Raise PopError unless ``verification`` has CN ``code`` and was signed by ``ca``'s key.

    The CN compares case-insensitively: the code is hex, and people retype it.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cn = common_name(verification)
    if cn is None:
        raise PopError(
            PopCheck.CODE_MISMATCH,
            f"the verification certificate {quoted(subject_name(verification))} has no common name "
            f"(CN); its CN must be the verification code {quoted(code)}",
        )
    if cn.strip().upper() != code.strip().upper():
        raise PopError(
            PopCheck.CODE_MISMATCH,
            f"the verification certificate's common name {quoted(cn)} does not match the "
            f"verification code {quoted(code)}; generate the certificate with CN={code}",
        )
    if verification.issuer != ca.subject:
        raise PopError(
            PopCheck.WRONG_ISSUER,
            f"the verification certificate was issued by {quoted(issuer_name(verification))}, "
            f"not by the CA certificate being verified ({quoted(subject_name(ca))})",
        )
    try:
        verification.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        raise PopError(
            PopCheck.WRONG_KEY,
            f"the verification certificate names {quoted(subject_name(ca))} as its issuer but its "
            "signature does not verify with that CA certificate's public key: it must be "
            "signed with the CA's own private key (wrong-key proof of possession)",
        ) from None
    if now > verification.not_valid_after_utc:
        raise PopError(
            PopCheck.NOT_VALID,
            "the verification certificate expired at "
            f"{format_utc(verification.not_valid_after_utc)}",
        )
    if now < verification.not_valid_before_utc:
        raise PopError(
            PopCheck.NOT_VALID,
            "the verification certificate is not valid before "
            f"{format_utc(verification.not_valid_before_utc)}",
        )
