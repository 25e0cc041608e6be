"""SharedAccessSignature tokens: one parser and verifier for every SDK's spelling.

SDKs disagree on field order, on whether ``sr`` is percent-encoded and in which case, and on
``skn``; so the signature is recomputed over ``sr`` exactly as sent, and the resource is compared
after decoding (protocol.md §0.1).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import urllib.parse
from typing import NamedTuple

PREFIX = "SharedAccessSignature "
MAX_TOKEN_LENGTH = 4096


class SasError(ValueError):
    """A token that is malformed, expired, for another resource, or wrongly signed.

    Messages never contain the key or the signature.
    """


class SasToken(NamedTuple):
    """Immutable; a tuple because a frozen dataclass costs a microsecond more to build, and
    every registration parses one."""

    sr_raw: str  # the resource exactly as sent (signed over this)
    resource: str  # percent-decoded
    sig: bytes  # decoded signature
    expiry: int
    key_name: str | None

    def string_to_sign(self) -> bytes:
        return f"{self.sr_raw}\n{self.expiry}".encode()


# %XX of every ASCII byte, both cases of hex digit: a token's escapes ('/', '+', '=') are all
# ASCII, and looking them up costs a third of ``unquote``'s regex and bytes round trip
_ASCII_ESCAPES = {f"{b:02{case}}": chr(b) for b in range(128) for case in "xX"}


def _pct_decode(value: str) -> str:
    """``urllib.parse.unquote`` (never ``unquote_plus``: a raw '+' is part of base64)."""
    if "%" not in value:
        return value
    head, *rest = value.split("%")
    out = [head]
    for chunk in rest:
        char = _ASCII_ESCAPES.get(chunk[:2])
        if char is None:  # a byte of a UTF-8 sequence, or not an escape: as unquote does
            return urllib.parse.unquote(value)
        out.append(char)
        out.append(chunk[2:])
    return "".join(out)


def parse(token: str) -> SasToken:
    if len(token) > MAX_TOKEN_LENGTH:
        raise SasError("the SAS token is too long")
    if not token.startswith(PREFIX):
        raise SasError("the token is not a SharedAccessSignature")
    fields: dict[str, str] = {}
    for part in token[len(PREFIX):].strip().split("&"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SasError("the SAS token has a field without a value")
        if name in fields:
            raise SasError(f"the SAS token repeats the field '{name}'")
        fields[name] = value.strip()
    missing = [f for f in ("sr", "sig", "se") if f not in fields]
    if missing:
        raise SasError(f"the SAS token lacks {', '.join(missing)}")
    try:
        expiry = int(fields["se"])
    except ValueError:
        raise SasError("the SAS token expiry 'se' is not an integer") from None
    try:
        sig = base64.b64decode(_pct_decode(fields["sig"]), validate=True)
    except (binascii.Error, ValueError):
        raise SasError("the SAS token signature is not base64") from None
    skn = fields.get("skn")
    return SasToken(
        sr_raw=fields["sr"],
        resource=_pct_decode(fields["sr"]),
        sig=sig,
        expiry=expiry,
        key_name=_pct_decode(skn) if skn is not None else None,
    )


def decode_key(key: str) -> bytes:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise SasError("the key is not base64") from None
    if not raw:
        raise SasError("the key is empty")
    return raw


def sign(key: str, message: bytes) -> bytes:
    # one-shot HMAC in C: no Python HMAC object (four of these per group registration)
    return hmac.digest(decode_key(key), message, "sha256")


def check_claims(token: SasToken, resource: str, now: float) -> None:
    """Resource and expiry; cheap checks done before any key is tried."""
    if token.resource.rstrip("/").lower() != resource.rstrip("/").lower():
        raise SasError("the SAS token is for another resource")
    if token.expiry <= int(now):
        raise SasError("the SAS token has expired")


def signature_matches(token: SasToken, keys: list[str]) -> bool:
    """True when any key signs the token. Every key is tried, compared in constant time."""
    message = token.string_to_sign()
    ok = False
    for key in keys:
        try:
            expected = sign(key, message)
        except SasError:
            continue
        ok |= hmac.compare_digest(expected, token.sig)
    return ok


def generate(resource: str, key: str, *, ttl: int = 3600, key_name: str | None = None,
             now: float | None = None) -> str:
    """A token in the Python SDK's spelling (quoted ``sr``, upper-case escapes)."""
    expiry = int((time.time() if now is None else now) + ttl)
    sr = urllib.parse.quote(resource, safe="")
    sig = base64.b64encode(sign(key, f"{sr}\n{expiry}".encode())).decode()
    token = f"{PREFIX}sr={sr}&sig={urllib.parse.quote(sig, safe='')}&se={expiry}"
    if key_name:
        token += f"&skn={urllib.parse.quote(key_name, safe='')}"
    return token


def derive_device_key(group_key: str, registration_id: str) -> str:
    """Group-derived device key (concepts-symmetric-key-attestation)."""
    return base64.b64encode(sign(group_key, registration_id.encode())).decode()
