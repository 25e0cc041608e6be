"""Private keys: RSA (2048/3072/4096) and EC (P-256/P-384), the kinds DPS devices use; PEM
(PKCS#8) in and out, optionally encrypted with a password."""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .errors import CertError, WrongPasswordError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
KeyType = Literal["ec", "rsa"]

RSA_SIZES = (2048, 3072, 4096)
DEFAULT_RSA_SIZE = 2048
CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}
DEFAULT_CURVE = "P-256"
_CURVE_NAMES = {cls.name: name for name, cls in CURVES.items()}  # "secp256r1" → "P-256"


def generate_rsa_key(size: int = DEFAULT_RSA_SIZE) -> rsa.RSAPrivateKey:
    if size not in RSA_SIZES:
        raise CertError(f"RSA key size must be one of {', '.join(map(str, RSA_SIZES))}, "
                        f"not {size}")
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def generate_ec_key(curve: str = DEFAULT_CURVE) -> ec.EllipticCurvePrivateKey:
    cls = CURVES.get(curve.upper())
    if cls is None:
        raise CertError(f"EC curve must be one of {', '.join(CURVES)}, not {curve}")
    return ec.generate_private_key(cls())


def generate_key(key_type: KeyType = "ec", *, size: int | None = None,
                 curve: str | None = None) -> PrivateKey:
    """A new key: ``size`` applies to RSA only, ``curve`` to EC only."""
    if key_type == "rsa":
        if curve is not None:
            raise CertError("a curve applies to EC keys only")
        return generate_rsa_key(size or DEFAULT_RSA_SIZE)
    if key_type == "ec":
        if size is not None:
            raise CertError("a key size applies to RSA keys only (EC keys take a curve)")
        return generate_ec_key(curve or DEFAULT_CURVE)
    raise CertError(f"key type must be 'ec' or 'rsa', not {key_type!r}")


def describe_key(key: PrivateKey | PublicKey) -> tuple[str, int, str]:
    """(type, bits, label), e.g. ("EC", 256, "EC P-256") or ("RSA", 2048, "RSA 2048")."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA", key.key_size, f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(key.curve.name, key.curve.name)
        return "EC", key.curve.key_size, f"EC {curve}"
    name = type(key).__name__.removeprefix("_").replace("PublicKey", "").replace("PrivateKey", "")
    return name, 0, name


def signature_hash(key: PrivateKey) -> hashes.HashAlgorithm:
    """SHA-384 for P-384 signers (a matching strength), SHA-256 otherwise (as the DPS docs)."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _password(password: str | bytes | None) -> bytes | None:
    if password is None or password == "" or password == b"":
        return None
    return password.encode() if isinstance(password, str) else password


def private_key_to_pem(key: PrivateKey, password: str | bytes | None = None) -> bytes:
    """PKCS#8 PEM (``BEGIN PRIVATE KEY``, or ``BEGIN ENCRYPTED PRIVATE KEY`` with a password)."""
    secret = _password(password)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def load_private_key(data: bytes, password: str | bytes | None = None) -> PrivateKey:
    """An RSA or EC private key from PEM (PKCS#8, PKCS#1 or SEC1) or DER.

    A password given for a key that is not encrypted is ignored, so one ``--key-password`` can
    both read a plain CA key and encrypt the new one.
    """
    secret = _password(password)
    try:
        key = _parse(data, secret)
    except TypeError:  # "password was given but key is not encrypted" or the reverse
        if secret is None:
            raise WrongPasswordError("the private key is encrypted: give its password") from None
        try:
            key = _parse(data, None)
        except (TypeError, ValueError):
            raise CertError("not a PEM or DER private key") from None
    except ValueError as exc:
        if secret is not None and (b"ENCRYPTED" in data or "password" in str(exc).lower()):
            raise WrongPasswordError("wrong password for the private key") from None
        raise CertError("not a PEM or DER private key") from None
    except Exception as exc:  # unsupported algorithms surface as UnsupportedAlgorithm
        raise CertError(f"cannot read the private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        kind = type(key).__name__.removesuffix("PrivateKey")
        raise CertError(f"unsupported key type {kind} (want RSA or EC)")
    return key


def _parse(data: bytes, secret: bytes | None) -> PrivateKeyTypes:
    if b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, secret)
    return serialization.load_der_private_key(data, secret)


def public_keys_match(a: PrivateKey | PublicKey, b: PrivateKey | PublicKey) -> bool:
    """Whether two keys (private or public) share the same public key."""
    def der(key: PrivateKey | PublicKey) -> bytes:
        public = key.public_key() if isinstance(key, rsa.RSAPrivateKey
                                                | ec.EllipticCurvePrivateKey) else key
        return public.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return der(a) == der(b)
