"""Etag-checked document rows, shared by every table of ``StoredDoc``s.

Each write runs inside an IMMEDIATE transaction, so compare-and-swap is atomic:
``UPDATE ... WHERE etag = :old`` touches zero rows when another writer got there first.

The statements of the hot paths are built once, with bind parameters, and reused: SQLAlchemy
then finds their compiled form in its cache instead of building and compiling a statement per
call (which cost more CPU than SQLite's own work).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from opendps.store.common import (
    check_limit,
    decode_continuation,
    dump_json,
    encode_continuation,
    load_json,
    new_etag,
    unquote_etag,
    utcnow,
)
from opendps.store.interface import EtagMismatch, NotFound, Page, StoredDoc
from opendps.store.loop_sqlite import PLANNED
from opendps.store.types import Serialized


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


_PREBUILT: dict[tuple[Any, ...], Any] = {}


def _prebuilt(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    stmt = _PREBUILT.get(key)
    if stmt is None:
        stmt = _PREBUILT[key] = build().execution_options(**{PLANNED: True})
    return stmt


def _where(table: sa.Table, names: tuple[str, ...]) -> sa.ColumnElement[bool]:
    return sa.and_(*(table.c[n] == sa.bindparam(f"w_{n}", type_=table.c[n].type)
                     for n in names))


def _params(ident: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    params = {f"w_{n}": v for n, v in ident.items()}
    params.update((f"v_{n}", v) for n, v in values.items())
    return params


def _upsert_statement(dialect: Any, table: sa.Table, keys: tuple[str, ...],
                      changes: tuple[str, ...], inserted: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET changes RETURNING created`` as one
    typed text statement, which SQLAlchemy caches (its ``insert()`` variants with ``ON
    CONFLICT`` are never cached). The syntax is the same on SQLite and PostgreSQL. No
    ``changes``: ``DO NOTHING``, which returns no row when the key is taken."""
    q = dialect.identifier_preparer.quote
    names = (*keys, *changes, *inserted)
    has_created = "created" in table.c
    action = ("DO UPDATE SET " + ", ".join(f"{q(n)} = excluded.{q(n)}" for n in changes)
              if changes else "DO NOTHING")
    sql = (f"INSERT INTO {q(table.name)} ({', '.join(q(n) for n in names)}) "
           f"VALUES ({', '.join(':v_' + n for n in names)}) "
           f"ON CONFLICT ({', '.join(q(n) for n in keys)}) {action}"
           + (" RETURNING created" if has_created else ""))
    stmt = sa.text(sql).bindparams(
        *(sa.bindparam(f"v_{n}", type_=table.c[n].type) for n in names))
    return stmt.columns(table.c.created) if has_created else stmt


async def _upsert(
    conn: AsyncConnection, table: sa.Table, ident: Mapping[str, Any],
    changes: Mapping[str, Any], inserted: Mapping[str, Any],
) -> Any:
    """``changes`` to the row at ``ident``, else insert ``ident`` + ``changes`` +
    ``inserted``, in one statement; returns ``created`` (None if the table has none)."""
    key = ("upsert", conn.dialect.name, table.name, tuple(ident), tuple(changes),
           tuple(inserted))
    stmt = _prebuilt(key, lambda: _upsert_statement(conn.dialect, table, *key[3:]))
    result = await conn.execute(stmt, _params({}, {**ident, **changes, **inserted}))
    return result.scalar() if "created" in table.c else None


async def upsert(
    conn: AsyncConnection, table: sa.Table, values: Mapping[str, Any], keys: list[str]
) -> None:
    """Insert, or overwrite every non-key column of the existing row."""
    ident = {k: values[k] for k in keys}
    await _upsert(conn, table, ident, {c: v for c, v in values.items() if c not in keys}, {})


def _match(table: sa.Table, ident: Mapping[str, Any]) -> sa.ColumnElement[bool]:
    return sa.and_(*(table.c[name] == value for name, value in ident.items()))


def to_doc(row: sa.Row[Any], key_column: str) -> StoredDoc:
    m = row._mapping
    return StoredDoc(
        key=m[key_column], doc=m["doc"], etag=m["etag"], created=m["created"],
        updated=m["updated"],
    )


async def get(
    conn: AsyncConnection, table: sa.Table, ident: Mapping[str, Any], key_column: str
) -> StoredDoc | None:
    names = tuple(ident)
    stmt = _prebuilt(("s", table.name, names), lambda: sa.select(table).where(
        _where(table, names)))
    row = (await conn.execute(stmt, _params(ident, {}))).first()
    return None if row is None else to_doc(row, key_column)


async def _missing(
    conn: AsyncConnection, table: sa.Table, ident: Mapping[str, Any]
) -> NoReturn:
    """Explain why a conditional write touched nothing."""
    found = await conn.scalar(sa.select(sa.literal(1)).where(_match(table, ident)))
    raise EtagMismatch() if found else NotFound()


async def put(
    conn: AsyncConnection, table: sa.Table, ident: Mapping[str, Any], key: str,
    values: Mapping[str, Any], doc: dict[str, Any], if_match: str | None,
) -> StoredDoc:
    """Write ``doc`` (plus indexed ``values``) honouring ``if_match``; see ``Store``."""
    now, etag = utcnow(), new_etag()
    text = dump_json(doc)  # once: for the row, and parsed back for the caller's copy
    changes = {**values, "doc": Serialized(text), "etag": etag, "updated": now}
    if if_match is None:
        created = await _upsert(conn, table, ident, changes, {"created": now})
    else:
        cond = _match(table, ident)
        if if_match != "*":
            cond = sa.and_(cond, table.c.etag == unquote_etag(if_match))
        stmt = sa.update(table).where(cond).values(changes).returning(table.c.created)
        created = (await conn.execute(stmt)).scalar()
    if created is None:
        await _missing(conn, table, ident)
    return StoredDoc(key=key, doc=load_json(text), etag=etag, created=created, updated=now)


async def add(
    conn: AsyncConnection, table: sa.Table, ident: Mapping[str, Any], key: str,
    doc: dict[str, Any],
) -> StoredDoc | None:
    """Insert ``doc`` at ``ident`` unless a row is there; None when one is."""
    now, etag = utcnow(), new_etag()
    text = dump_json(doc)
    inserted = {"doc": Serialized(text), "etag": etag, "updated": now, "created": now}
    if await _upsert(conn, table, ident, {}, inserted) is None:
        return None
    return StoredDoc(key=key, doc=load_json(text), etag=etag, created=now, updated=now)


async def delete(
    conn: AsyncConnection, table: sa.Table, ident: Mapping[str, Any], if_match: str | None
) -> None:
    """Delete honouring ``if_match``; NotFound when there is nothing to delete."""
    cond = _match(table, ident)
    if if_match not in (None, "*"):
        cond = sa.and_(cond, table.c.etag == unquote_etag(if_match))
    result = await conn.execute(sa.delete(table).where(cond))
    if result.rowcount == 0:
        await _missing(conn, table, ident)


async def page(
    conn: AsyncConnection, table: sa.Table, where: sa.ColumnElement[bool], order_column: str,
    key_column: str, limit: int, continuation: str | None,
) -> Page:
    """Keyset paging on ``order_column``; the token carries the last value seen."""
    check_limit(limit)
    order = table.c[order_column]
    stmt = sa.select(table).where(where).order_by(order).limit(limit + 1)
    after = decode_continuation(continuation)
    if after is not None:
        stmt = stmt.where(order > after)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    token = encode_continuation(rows[-1]._mapping[order_column]) if more else None
    return Page(items=[to_doc(r, key_column) for r in rows], continuation=token)
