"""The boundary where driver exceptions become ``StoreError``s (like httpx's mapping of
transport errors), so callers only ever handle the interface's exceptions."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from opendps.store.interface import Conflict, StoreError

try:
    import asyncpg

    _ASYNCPG: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError)
except ImportError:  # pragma: no cover - asyncpg is a dependency
    _ASYNCPG = ()

_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    sqlite3.Error,
    CommandError,
    OSError,
    TimeoutError,
    *_ASYNCPG,
)

P = ParamSpec("P")
R = TypeVar("R")


def _describe(exc: BaseException) -> str:
    # The driver's own message; SQLAlchemy's would add the SQL text.
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(orig).__name__}: {orig}"


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise driver errors as ``StoreError`` (``Conflict`` for constraint violations)."""
    try:
        yield
    except StoreError:
        raise
    except IntegrityError as exc:
        raise Conflict(_describe(exc)) from exc
    except _DRIVER_ERRORS as exc:
        raise StoreError(_describe(exc)) from exc


def translate(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorator form of ``translated`` for the store's public coroutine methods."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated():
            return await fn(*args, **kwargs)

    return wrapper
