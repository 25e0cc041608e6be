"""Both implementations expose exactly the ``Store`` protocol's signatures."""

from __future__ import annotations

import inspect

import pytest

from opendps.store import MemoryStore, SqlStore, Store

PROTOCOL_METHODS = sorted(
    name for name, value in vars(Store).items()
    if inspect.iscoroutinefunction(value) and not name.startswith("_")
)


@pytest.mark.parametrize("impl", [MemoryStore, SqlStore])
@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_signature_matches_protocol(impl: type, name: str) -> None:
    method = getattr(impl, name)
    assert inspect.iscoroutinefunction(method)
    assert inspect.signature(method) == inspect.signature(getattr(Store, name))
