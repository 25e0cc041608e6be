"""Azure's timestamp spelling: UTC, seven fractional digits, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_utc(value: datetime) -> str:
    v = value.astimezone(UTC)  # an f-string: strftime is several times slower, per record
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:"
            f"{v.second:02d}.{v.microsecond:06d}0Z")


def parse_utc(text: str) -> datetime:
    """Accept what we emit and ISO-8601 variants (fewer or more fractional digits)."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, _, tz = text.partition("+")
    if "." in head:
        base, frac = head.split(".", 1)
        head = f"{base}.{(frac + '000000')[:6]}"
    value = datetime.fromisoformat(head + ("+" + tz if tz else "+00:00"))
    return value.astimezone(UTC)
