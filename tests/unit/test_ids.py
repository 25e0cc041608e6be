"""Random identifiers come from a pool of ``os.urandom`` bytes: never the same bytes twice,
neither within a process nor in a worker forked from it."""

from __future__ import annotations

import os
import re
import sys

import pytest

from opendps.protocol import ids


def test_identifiers_have_their_shapes_and_never_repeat() -> None:
    seen = {ids.token_hex() for _ in range(2000)} | {ids.guid() for _ in range(2000)}
    assert len(seen) == 4000
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", ids.guid())
    assert re.fullmatch(r"[0-9a-f]{18}", ids.token_hex(9))
    big = ids.token_hex(ids.POOL_BYTES + 10)  # more than one pool at once
    assert len(big) == 2 * (ids.POOL_BYTES + 10) and big != ids.token_hex(ids.POOL_BYTES + 10)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_a_forked_worker_does_not_reuse_the_parents_pool() -> None:
    ids.token_hex()  # the pool now holds bytes a child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next identifiers and leave at once
        try:
            os.write(write, " ".join(ids.token_hex() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {ids.token_hex() for _ in range(50)}
    assert len(child) == 50 and not child & parent
