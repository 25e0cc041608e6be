"""Random identifiers: GUID-shaped strings and hex tokens from the kernel's CSPRNG.

``uuid.uuid4()`` builds a UUID object around the same 16 random bytes and costs five times as
much; a registration makes about ten of these (etags, operation and tracking IDs), and none is
ever parsed as a UUID, only compared. None is a secret either (keys come from ``os.urandom``
directly), so they are cut from one 4 KiB ``os.urandom`` read at a time, not a ``getrandom``
system call each. A forked worker starts with an empty pool, so two workers never share bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["guid", "token_hex"]

POOL_BYTES = 4096


class _Pool:
    __slots__ = ("buf", "lock", "pos")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buf = b""
        self.pos = 0

    def take(self, n: int) -> bytes:
        with self.lock:
            start, end = self.pos, self.pos + n
            if end > len(self.buf):
                self.buf, start, end = os.urandom(max(POOL_BYTES, n)), 0, n
            self.pos = end
            return self.buf[start:end]

    def reset(self) -> None:
        self.lock = threading.Lock()  # a lock held by another thread at fork stays held
        self.buf, self.pos = b"", 0


_POOL = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL.reset)


def token_hex(nbytes: int = 16) -> str:
    return _POOL.take(nbytes).hex()


def guid() -> str:
    """``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``, 128 random bits."""
    h = _POOL.take(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
