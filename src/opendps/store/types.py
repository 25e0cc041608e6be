"""Column types that round-trip identically on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from opendps.store.common import as_utc, dump_json, load_json


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes with microseconds on both backends.

    PostgreSQL keeps them in ``timestamptz``; SQLite stores a fixed-width naive UTC string,
    which also sorts chronologically, and we re-attach UTC on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    # SQLite: the text SQLAlchemy's DATETIME writes ("2026-12-03 10:00:00.000123"), made and
    # read with isoformat/fromisoformat, which cost a third of its %-formatting and regex.
    # Every registration binds about a dozen of these.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return value.isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

        return process


class Serialized(str):
    """JSON text already made by the caller (who also needs it for something else): bound
    to a ``JsonText`` column as it is, not serialised a second time."""

    __slots__ = ()


class JsonText(sa.TypeDecorator[Any]):
    """JSON kept as compact text so both backends store and return exactly the same thing."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if type(value) is Serialized:
            return str.__str__(value)
        return dump_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else load_json(value)


def key_text() -> sa.types.TypeEngine[str]:
    """Text for keys we sort and page by: byte order ("C") on PostgreSQL, like SQLite and
    Python, so continuation tokens mean the same everywhere."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def seq_type() -> sa.types.TypeEngine[int]:
    """BIGINT on PostgreSQL; SQLite only auto-increments an ``INTEGER PRIMARY KEY``."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
