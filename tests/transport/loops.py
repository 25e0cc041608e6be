"""The event loops a test directory runs its async tests under, for its conftest's
``pytest_asyncio_loop_factories``: the stdlib loop, and uvloop (what ``opendps serve`` and the
load generator run on) when it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def both_loops() -> dict[str, Callable[[], object]]:
    factories: dict[str, Callable[[], object]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories
