"""Driving ``verify_chain`` from the tests: anchors, and accept/reject with the expected check."""

from __future__ import annotations

from datetime import datetime

import pytest
from x509_factory import NOW, Issued

from opendps.protocol.x509 import Anchor, ChainCheck, ChainError, VerifiedChain, verify_chain

ROOT_ANCHOR_KEY = "ca:contoso-root"
GROUP_KEY = "group:line-1"


def anchor(issued: Issued, key: str = ROOT_ANCHOR_KEY) -> Anchor:
    return Anchor(issued.cert, key)


def accept(
    presented: list[Issued],
    anchors: list[Anchor],
    *,
    registration_id: str | None = None,
    now: datetime = NOW,
) -> VerifiedChain:
    return verify_chain(
        [i.cert for i in presented], anchors, now=now, registration_id=registration_id
    )


def reject(
    presented: list[Issued],
    anchors: list[Anchor],
    check: ChainCheck,
    *,
    registration_id: str | None = None,
    now: datetime = NOW,
) -> ChainError:
    with pytest.raises(ChainError) as info:
        accept(presented, anchors, registration_id=registration_id, now=now)
    assert info.value.check is check, str(info.value)
    return info.value
