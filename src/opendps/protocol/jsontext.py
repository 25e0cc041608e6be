"""Compact JSON in and out, on orjson, with the standard library as the fallback.

Every registration serialises and parses its documents several times (stored records, wire
bodies), and the stdlib's encoder was the largest single cost after SQLite itself. orjson
covers everything our documents hold; what it refuses (integers beyond 64 bits, lone
surrogates, the NaN/Infinity literals the stdlib parser accepts, non-UTF-8 encodings) goes to
the stdlib, so any value the stdlib handled still round-trips, and parse errors keep the
stdlib's messages. Output is UTF-8 rather than ASCII escapes: the same JSON value."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumpb", "dumps", "loads"]


def dumpb(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes (wire bodies)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    """``value`` as compact JSON text (stored documents)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON; raises ``ValueError`` (``json.JSONDecodeError``) or ``UnicodeDecodeError``
    with the stdlib's message when the text is not JSON."""
    try:
        return orjson.loads(text)
    except ValueError:  # orjson.JSONDecodeError is a json.JSONDecodeError
        if isinstance(text, memoryview):
            text = text.tobytes()
        return json.loads(text)
