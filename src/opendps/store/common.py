"""Helpers shared by every backend so they agree on etags, clocks, keys and paging tokens."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from opendps.protocol import jsontext
from opendps.protocol.ids import token_hex
from opendps.store.interface import StoreError


class InvalidContinuation(StoreError, ValueError):
    """A continuation token the store did not issue (a client error, hence also ValueError)."""


def new_etag() -> str:
    """A fresh random etag; random (not a counter) so it never repeats after a delete."""
    return token_hex()


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Normalise to aware UTC; naive values are taken to already be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def fold(key: str) -> str:
    """Case-folded key for IDs Azure compares case-insensitively."""
    return key.lower()


def unquote_etag(etag: str) -> str:
    """Accept a quoted HTTP etag as well; the store keeps them unquoted."""
    if len(etag) >= 2 and etag.startswith('"') and etag.endswith('"'):
        return etag[1:-1]
    return etag


def dump_json(value: Any) -> str:
    """Compact JSON: the same text on every backend."""
    return jsontext.dumps(value)


def load_json(text: str) -> Any:
    return jsontext.loads(text)


def copy_json(value: Any) -> Any:
    """What reading ``value`` back would return: a deep, JSON-normalised copy."""
    return jsontext.loads(jsontext.dumpb(value))


def encode_continuation(last_key: str) -> str:
    """Opaque token naming the last key of a page (the next page starts after it)."""
    raw = dump_json([last_key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continuation(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidContinuation("invalid continuation token") from exc
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
        raise InvalidContinuation("invalid continuation token")
    return value[0]


def check_limit(limit: int) -> None:
    """Paging needs at least one item per page, or it would never advance."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
