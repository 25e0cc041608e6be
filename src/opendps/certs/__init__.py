"""Certificate tooling for DPS X.509 attestation, in place of the docs' OpenSSL scripts and the
CertificateManager package: keys, a root → intermediate → device hierarchy, self-signed device
certificates, proof-of-possession (verification) certificates, PEM/chain/PFX files and a
description of any certificate file.

Pure ``cryptography``: functions take and return objects or bytes; only ``files`` writes.
"""

from __future__ import annotations

from .errors import CertError, OutputExistsError, WrongPasswordError
from .files import (
    certificates_pem,
    chain_certificates,
    ensure_writable,
    pfx_bytes,
    write_certificate,
    write_chain,
    write_pfx,
    write_private_key,
)
from .inspect import (
    CertificateInfo,
    FileInfo,
    describe_certificate,
    describe_chain,
    describe_file,
    is_signed_by,
    thumbprint,
)
from .issue import (
    check_registration_id,
    create_device_certificate,
    create_intermediate_ca,
    create_root_ca,
    create_self_signed_device_certificate,
    create_verification_certificate,
)
from .keys import (
    PrivateKey,
    generate_ec_key,
    generate_key,
    generate_rsa_key,
    load_private_key,
    private_key_to_pem,
)
from .load import LoadedFile, load_certificate, load_certificate_file, load_certificates

__all__ = [
    "CertError",
    "CertificateInfo",
    "FileInfo",
    "LoadedFile",
    "OutputExistsError",
    "PrivateKey",
    "WrongPasswordError",
    "certificates_pem",
    "chain_certificates",
    "check_registration_id",
    "create_device_certificate",
    "create_intermediate_ca",
    "create_root_ca",
    "create_self_signed_device_certificate",
    "create_verification_certificate",
    "describe_certificate",
    "describe_chain",
    "describe_file",
    "ensure_writable",
    "generate_ec_key",
    "generate_key",
    "generate_rsa_key",
    "is_signed_by",
    "load_certificate",
    "load_certificate_file",
    "load_certificates",
    "load_private_key",
    "pfx_bytes",
    "private_key_to_pem",
    "thumbprint",
    "write_certificate",
    "write_chain",
    "write_pfx",
    "write_private_key",
]
