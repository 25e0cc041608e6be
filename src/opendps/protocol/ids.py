"""Random identifiers: GUID-shaped strings and hex tokens from ``os.urandom``.

``uuid.uuid4()`` builds a UUID object around the same 16 random bytes and costs five times as
much; a registration makes about ten of these (etags, operation and tracking IDs), and none is
ever parsed as a UUID, only compared."""

from __future__ import annotations

import os

__all__ = ["guid", "token_hex"]


def token_hex(nbytes: int = 16) -> str:
    return os.urandom(nbytes).hex()


def guid() -> str:
    """``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``, 128 random bits."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
