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


def _mapped(exc: Exception) -> StoreError | None:
    """The ``StoreError`` a driver exception becomes (``Conflict`` for constraint
    violations); None for what passes through unchanged."""
    if isinstance(exc, StoreError):
        return None
    if isinstance(exc, IntegrityError):
        return Conflict(_describe(exc))
    if isinstance(exc, _DRIVER_ERRORS):
        return StoreError(_describe(exc))
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise driver errors as ``StoreError`` (``Conflict`` for constraint violations)."""
    try:
        yield
    except Exception as exc:
        mapped = _mapped(exc)
        if mapped is None:
            raise
        raise mapped from exc


def translate(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorator form of ``translated`` for the store's public coroutine methods (inline,
    not the context manager: this wraps every store call, and a generator-based context
    manager per call cost more than most SQLite statements)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

    return wrapper
