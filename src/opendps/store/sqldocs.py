"""Etag-checked document rows, shared by every table of ``StoredDoc``s.

Each write is one statement inside an IMMEDIATE transaction, so compare-and-swap is atomic:
``UPDATE ... WHERE etag = :old`` touches zero rows when another writer got there first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from opendps.store.common import (
    check_limit,
    copy_json,
    decode_continuation,
    encode_continuation,
    new_etag,
    unquote_etag,
    utcnow,
)
from opendps.store.interface import EtagMismatch, NotFound, Page, StoredDoc


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def upsert(
    conn: AsyncConnection, table: sa.Table, values: Mapping[str, Any], keys: list[str]
) -> None:
    """Insert, or overwrite every non-key column of the existing row, in one statement."""
    ins = dialect_insert(conn, table).values(dict(values))
    rest = {c: ins.excluded[c] for c in values if c not in keys}
    await conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=rest))


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
    row = (await conn.execute(sa.select(table).where(_match(table, ident)))).first()
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
    changes = {**values, "doc": doc, "etag": etag, "updated": now}
    if if_match is None:
        ins = dialect_insert(conn, table).values({**ident, **changes, "created": now})
        stmt = ins.on_conflict_do_update(
            index_elements=list(ident), set_={c: ins.excluded[c] for c in changes}
        ).returning(table.c.created)
    else:
        cond = _match(table, ident)
        if if_match != "*":
            cond = sa.and_(cond, table.c.etag == unquote_etag(if_match))
        stmt = sa.update(table).where(cond).values(changes).returning(table.c.created)
    created = (await conn.execute(stmt)).scalar()
    if created is None:
        await _missing(conn, table, ident)
    return StoredDoc(key=key, doc=copy_json(doc), etag=etag, created=created, updated=now)


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
