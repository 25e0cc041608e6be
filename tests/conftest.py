"""Shared fixtures: real ``opendps serve`` processes (see ``integration/servers.py``), and a
count of the places our code asks asyncio for the running loop."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration.servers import ServerProcess, backend_params, start_server


@pytest.fixture(scope="module")
def opendps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("opendps"))
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.fixture(scope="module", params=backend_params())
def any_backend_server(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same server on SQLite and on PostgreSQL, for tests that must pass on both."""
    server = start_server(tmp_path_factory.mktemp("opendps"), backend=request.param)
    yield server
    server.stop()
    assert server.proc.returncode == 0, server.log()


@pytest.fixture
def loop_lookups(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Calls from opendps's modules to ``asyncio`` functions that find the running loop
    themselves (on Python 3.11 a ``getpid`` system call each), by ``module.function``:
    ``get_running_loop``, ``ensure_future``, and ``current_task`` without a loop."""
    seen: Counter[str] = Counter()

    def counted(name: str, original: Callable[..., Any], finds_loop: Callable[..., bool]
                ) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("opendps.") and finds_loop(*args, **kwargs):
                seen[f"{caller}.{name}"] += 1
            return original(*args, **kwargs)
        return wrapper

    def always(*args: Any, **kwargs: Any) -> bool:
        return True

    def without_loop(loop: object = None) -> bool:
        return loop is None

    monkeypatch.setattr(asyncio, "get_running_loop",
                        counted("get_running_loop", asyncio.get_running_loop, always))
    monkeypatch.setattr(asyncio, "current_task",
                        counted("current_task", asyncio.current_task, without_loop))
    monkeypatch.setattr(asyncio, "ensure_future",
                        counted("ensure_future", asyncio.ensure_future, always))
    return seen
