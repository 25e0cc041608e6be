"""Persistence for opendps: the ``Store`` contract, a SQL implementation (SQLite or
PostgreSQL) and an in-memory one for tests."""

from opendps.store.common import InvalidContinuation
from opendps.store.interface import (
    AccessPolicy,
    Conflict,
    EnrollmentKind,
    EtagMismatch,
    EventItem,
    HubRecord,
    NotFound,
    Page,
    Store,
    StoredDoc,
    StoreError,
    TelemetryEvent,
)
from opendps.store.memory import MemoryStore
from opendps.store.sql import SqlStore, open_store

__all__ = [
    "AccessPolicy",
    "Conflict",
    "EnrollmentKind",
    "EtagMismatch",
    "EventItem",
    "HubRecord",
    "InvalidContinuation",
    "MemoryStore",
    "NotFound",
    "Page",
    "SqlStore",
    "Store",
    "StoreError",
    "StoredDoc",
    "TelemetryEvent",
    "open_store",
]
