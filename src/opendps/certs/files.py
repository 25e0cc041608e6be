"""Writing what the tools make: PEM certificates, PEM keys (mode 0600), chain files and
PKCS#12/PFX. Nothing is overwritten unless ``force`` is given.

A new file is created exclusively (``O_EXCL``) with its final mode, so a key is never readable
by others, not even for a moment; with ``force`` the file is written beside its target and
renamed over it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import CertError, OutputExistsError
from .keys import PrivateKey, private_key_to_pem

KEY_MODE = 0o600
CERT_MODE = 0o644

PathLike = str | os.PathLike[str]


def certificates_pem(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def chain_certificates(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate] = (),
                       root: x509.Certificate | None = None) -> list[x509.Certificate]:
    """What a device presents: leaf first, then each issuer towards the root (DPS docs order)."""
    return [leaf, *intermediates, *([root] if root is not None else [])]


def pfx_bytes(key: PrivateKey, cert: x509.Certificate, chain: Sequence[x509.Certificate] = (),
              password: str | bytes = b"", *, name: str | None = None,
              legacy: bool = False) -> bytes:
    """PKCS#12 with the key, the certificate and its chain (intermediates, maybe the root).

    The default encryption is AES-256 with PBKDF2 (OpenSSL 3, current Windows, .NET); ``legacy``
    picks 3DES with SHA-1 for old Windows and OpenSSL 1.x importers.
    """
    secret = password.encode() if isinstance(password, str) else password
    if not secret:
        raise CertError("a PFX needs a password")
    encryption: serialization.KeySerializationEncryption
    if legacy:
        encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                      .kdf_rounds(50000)
                      .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                      .hmac_hash(hashes.SHA1())
                      .build(secret))
    else:
        encryption = serialization.BestAvailableEncryption(secret)
    friendly = (name or _common_name(cert)).encode()
    return pkcs12.serialize_key_and_certificates(friendly, key, cert, list(chain) or None,
                                                 encryption)


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(names[0].value) if names else "certificate"


# -- writing --------------------------------------------------------------------------------------
def ensure_writable(paths: Iterable[PathLike], force: bool = False) -> None:
    """Fail before writing anything if one of several outputs exists (and ``force`` is off)."""
    if force:
        return
    for path in paths:
        if os.path.lexists(path):
            raise OutputExistsError(f"{path} exists (use --force to overwrite)")


def write_bytes(path: PathLike, data: bytes, *, mode: int = CERT_MODE,
                force: bool = False) -> Path:
    target = Path(path)
    try:
        if not force:
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            except FileExistsError:
                raise OutputExistsError(f"{target} exists (use --force to overwrite)") from None
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return target
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                os.chmod(temp, mode)
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CertError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def write_certificate(path: PathLike, cert: x509.Certificate | Sequence[x509.Certificate], *,
                      force: bool = False) -> Path:
    certs = [cert] if isinstance(cert, x509.Certificate) else list(cert)
    return write_bytes(path, certificates_pem(certs), force=force)


def write_chain(path: PathLike, leaf: x509.Certificate,
                intermediates: Sequence[x509.Certificate] = (),
                root: x509.Certificate | None = None, *, force: bool = False) -> Path:
    return write_certificate(path, chain_certificates(leaf, intermediates, root), force=force)


def write_private_key(path: PathLike, key: PrivateKey, password: str | bytes | None = None, *,
                      force: bool = False) -> Path:
    return write_bytes(path, private_key_to_pem(key, password), mode=KEY_MODE, force=force)


def write_pfx(path: PathLike, key: PrivateKey, cert: x509.Certificate,
              chain: Sequence[x509.Certificate] = (), password: str | bytes = b"", *,
              name: str | None = None, legacy: bool = False, force: bool = False) -> Path:
    data = pfx_bytes(key, cert, chain, password, name=name, legacy=legacy)
    return write_bytes(path, data, mode=KEY_MODE, force=force)
