"""Etags: stored unquoted, sent quoted, compared without quotes (protocol.md §4.4)."""

from __future__ import annotations


def quote(etag: str) -> str:
    return f'"{etag}"'


def unquote(value: str | None) -> str | None:
    """Normalise an ``If-Match`` header or JSON etag; ``*`` stays ``*``; empty means absent."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value or None
