"""A transactional receive buffer, after wsproto's ``Buffer``.

The decoder reads a packet speculatively; if the bytes run out half-way it rolls back and waits
for more, so a packet split at any offset decodes exactly like one that arrived whole.
"""

from __future__ import annotations


class Buffer:
    """Received bytes with a read cursor; reads become permanent only on ``commit``."""

    __slots__ = ("_data", "_pos")

    def __init__(self) -> None:
        self._data = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._data += data

    def read_byte(self) -> int | None:
        """The next byte, or None (cursor unmoved) when none is buffered."""
        if self._pos >= len(self._data):
            return None
        self._pos += 1
        return self._data[self._pos - 1]

    def read_exactly(self, n: int) -> bytes | None:
        """The next ``n`` bytes, or None (cursor unmoved) when fewer are buffered."""
        end = self._pos + n
        if end > len(self._data):
            return None
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def commit(self) -> None:
        """Drop everything read so far: it has been turned into a packet."""
        del self._data[: self._pos]
        self._pos = 0

    def rollback(self) -> None:
        """Forget the reads since the last commit: the packet is not complete yet."""
        self._pos = 0

    def __len__(self) -> int:
        """Bytes held that are not yet committed."""
        return len(self._data)
