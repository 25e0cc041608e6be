"""X.509 for DPS attestation, pure: loading uploads, judging device chains, proof of possession.

No I/O and no clock: callers pass ``now``. See ``chain`` for the trust rules, ``certificates``
for accepted formats and ``X509CertificateInfo``, ``pop`` for CA verification.
"""

from .certificates import (
    CertificateFormatError,
    certificate_info,
    common_name,
    is_self_signed,
    load_certificate,
    load_chain,
    sha1_thumbprint,
    sha256_thumbprint,
    to_pem,
)
from .chain import Anchor, ChainCheck, ChainError, VerifiedChain, verify_chain
from .names import format_name
from .pop import PopCheck, PopError, check_verification_certificate, new_verification_code

__all__ = [
    "Anchor",
    "CertificateFormatError",
    "ChainCheck",
    "ChainError",
    "PopCheck",
    "PopError",
    "VerifiedChain",
    "certificate_info",
    "check_verification_certificate",
    "common_name",
    "format_name",
    "is_self_signed",
    "load_certificate",
    "load_chain",
    "new_verification_code",
    "sha1_thumbprint",
    "sha256_thumbprint",
    "to_pem",
    "verify_chain",
]
