"""The load generator's event loop: uvloop when importable, as ``opendps serve`` runs on.

On the stdlib loop every socket callback goes through pure-Python selector code; the load
generator shares the cores with the server it measures, so its loop should cost what the
server's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop if there is one (3.11 has no ``loop_factory=`` there)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
