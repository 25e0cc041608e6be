"""Issuing certificates: the root → intermediate → device hierarchy of the DPS X.509 tutorials,
self-signed device certificates for individual enrollments, and the proof-of-possession
(verification) certificate of the DPS certificate API.

Extensions follow the tutorial's OpenSSL configuration (``v3_ca``/``v3_intermediate_ca``,
``usr_cert``) with the keyid form of the authority key identifier; serial numbers are random;
not-before is back-dated a little so a device whose clock runs behind still accepts a new
certificate.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..protocol.regid import is_valid_registration_id
from .errors import CertError
from .keys import PrivateKey, PublicKey, generate_ec_key, public_keys_match, signature_hash

MAX_CN = 64  # X.509 ub-common-name; DPS: "the registration ID is limited to 64 characters"
CLOCK_SKEW = dt.timedelta(minutes=5)
ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 1825
DEVICE_DAYS = 365
VERIFICATION_DAYS = 1

__all__ = [
    "CLOCK_SKEW",
    "DEVICE_DAYS",
    "INTERMEDIATE_DAYS",
    "MAX_CN",
    "ROOT_DAYS",
    "VERIFICATION_DAYS",
    "check_ca_cn",
    "check_registration_id",
    "create_device_certificate",
    "create_intermediate_ca",
    "create_root_ca",
    "create_self_signed_device_certificate",
    "create_verification_certificate",
]


# -- names ----------------------------------------------------------------------------------------
def check_registration_id(registration_id: str) -> str:
    """The device certificate's CN is the registration ID: 1–64 characters of the DPS set."""
    if not 1 <= len(registration_id) <= MAX_CN:
        raise CertError(f"registration ID must be 1–{MAX_CN} characters for an X.509 device "
                        f"(it becomes the certificate CN), not {len(registration_id)}")
    if not is_valid_registration_id(registration_id):
        raise CertError(f"invalid registration ID {registration_id!r}: use letters, digits and "
                        "': . _ -', starting and ending with a letter or digit")
    return registration_id


def check_ca_cn(cn: str, what: str = "CA common name") -> str:
    if not cn.strip():
        raise CertError(f"the {what} must not be empty")
    if len(cn) > MAX_CN:
        raise CertError(f"the {what} must be at most {MAX_CN} characters, not {len(cn)}")
    return cn


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


# -- building blocks ------------------------------------------------------------------------------
def _check_days(days: int) -> None:
    if days < 1:
        raise CertError(f"validity must be at least 1 day, not {days}")


def _check_issuer(issuer_cert: x509.Certificate, issuer_key: PrivateKey) -> None:
    if not public_keys_match(issuer_key, issuer_cert.public_key()):  # type: ignore[arg-type]
        raise CertError("the CA key does not belong to the CA certificate "
                        f"({issuer_cert.subject.rfc4514_string()})")
    try:
        constraints = issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise CertError(f"{issuer_cert.subject.rfc4514_string()} is not a CA certificate "
                        "(basicConstraints CA:TRUE missing)")


def _issuer_pathlen(issuer_cert: x509.Certificate) -> int | None:
    return issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length


def _aki(issuer_cert: x509.Certificate | None, issuer_key: PrivateKey
         ) -> x509.AuthorityKeyIdentifier:
    if issuer_cert is not None:
        try:
            ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:
            pass
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(
        issuer_key.public_key())  # type: ignore[arg-type]


def _builder(subject: x509.Name, issuer: x509.Name, public_key: PublicKey,
             days: int, now: dt.datetime | None) -> x509.CertificateBuilder:
    _check_days(days)
    now = now or dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def _ca_extensions(builder: x509.CertificateBuilder, pathlen: int | None
                   ) -> x509.CertificateBuilder:
    if pathlen is not None and pathlen < 0:
        raise CertError(f"pathlen must be 0 or more, not {pathlen}")
    return (builder
            .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True))


def _end_entity(builder: x509.CertificateBuilder, key: PrivateKey, *, client_auth: bool
                ) -> x509.CertificateBuilder:
    builder = (builder
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False,
                   key_encipherment=isinstance(key, rsa.RSAPrivateKey), data_encipherment=False,
                   key_agreement=False, key_cert_sign=False, crl_sign=False,
                   encipher_only=False, decipher_only=False), critical=True))
    if client_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder


# -- CAs ------------------------------------------------------------------------------------------
def create_root_ca(cn: str, key: PrivateKey, days: int = ROOT_DAYS, pathlen: int | None = None,
                   *, now: dt.datetime | None = None) -> x509.Certificate:
    """A self-signed root CA: the certificate uploaded to DPS and verified."""
    name = _name(check_ca_cn(cn))
    builder = _builder(name, name, key.public_key(), days, now)
    builder = _ca_extensions(builder, pathlen).add_extension(_aki(None, key), critical=False)
    return builder.sign(key, signature_hash(key))


def create_intermediate_ca(cn: str, key: PrivateKey, issuer_cert: x509.Certificate,
                           issuer_key: PrivateKey, days: int = INTERMEDIATE_DAYS,
                           pathlen: int | None = None, *, now: dt.datetime | None = None
                           ) -> x509.Certificate:
    """An intermediate CA signed by ``issuer_cert`` (a root or another intermediate)."""
    name = _name(check_ca_cn(cn))
    _check_issuer(issuer_cert, issuer_key)
    limit = _issuer_pathlen(issuer_cert)
    if limit is not None:
        if limit == 0:
            raise CertError(f"{issuer_cert.subject.rfc4514_string()} has pathlen 0: it may sign "
                            "device certificates but no further CA")
        if pathlen is not None and pathlen > limit - 1:
            raise CertError(f"pathlen {pathlen} exceeds what the issuer allows "
                            f"(its pathlen is {limit}, so at most {limit - 1})")
    builder = _builder(name, issuer_cert.subject, key.public_key(), days, now)
    builder = _ca_extensions(builder, pathlen).add_extension(_aki(issuer_cert, issuer_key),
                                                             critical=False)
    return builder.sign(issuer_key, signature_hash(issuer_key))


# -- devices --------------------------------------------------------------------------------------
def create_device_certificate(registration_id: str, key: PrivateKey,
                              issuer_cert: x509.Certificate, issuer_key: PrivateKey,
                              days: int = DEVICE_DAYS, *, now: dt.datetime | None = None
                              ) -> x509.Certificate:
    """A device (leaf) certificate for enrollment groups: CN = registration ID, clientAuth."""
    name = _name(check_registration_id(registration_id))
    _check_issuer(issuer_cert, issuer_key)
    builder = _builder(name, issuer_cert.subject, key.public_key(), days, now)
    builder = _end_entity(builder, key, client_auth=True)
    builder = builder.add_extension(_aki(issuer_cert, issuer_key), critical=False)
    return builder.sign(issuer_key, signature_hash(issuer_key))


def create_self_signed_device_certificate(registration_id: str, key: PrivateKey,
                                          days: int = DEVICE_DAYS, *,
                                          now: dt.datetime | None = None) -> x509.Certificate:
    """A self-signed device certificate for an individual enrollment (matched by thumbprint)."""
    name = _name(check_registration_id(registration_id))
    builder = _builder(name, name, key.public_key(), days, now)
    builder = _end_entity(builder, key, client_auth=True)
    builder = builder.add_extension(_aki(None, key), critical=False)
    return builder.sign(key, signature_hash(key))


def create_verification_certificate(code: str, ca_cert: x509.Certificate, ca_key: PrivateKey,
                                    days: int = VERIFICATION_DAYS, *,
                                    key: PrivateKey | None = None,
                                    now: dt.datetime | None = None) -> x509.Certificate:
    """Proof of possession: CN = the verification code DPS generated, signed by the CA's key.

    The certificate's own key is thrown away (a fresh P-256 key unless ``key`` is given):
    only the CA's signature matters to the service.
    """
    code = code.strip()
    check_ca_cn(code, "verification code")
    _check_issuer(ca_cert, ca_key)
    key = key or generate_ec_key()
    builder = _builder(_name(code), ca_cert.subject, key.public_key(), days, now)
    builder = _end_entity(builder, key, client_auth=False)
    builder = builder.add_extension(_aki(ca_cert, ca_key), critical=False)
    return builder.sign(ca_key, signature_hash(ca_key))
