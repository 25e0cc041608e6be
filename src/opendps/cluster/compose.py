"""What ``server.start`` calls to become a cluster member: the bus and connection table for
the database in use, and the HTTP additions (roles, instance header, readiness). On SQLite the
in-process ``EventBus`` is kept: one instance is the whole service."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..api.health import READINESS, Readiness
from ..config import Settings
from ..hub.bus import EventBus
from ..hub.connections import ConnectionTable
from ..hub.pg_bus import PgEventBus, asyncpg_dsn, is_postgres
from ..store.interface import Store
from .connections import ClusterConnectionTable
from .roles import RoleRouter, install_http, parse_roles


@dataclass
class Membership:
    name: str  # shown to clients and operators (x-opendps-instance)
    instance_id: str  # unique per process: tells this process's bus messages from others'
    roles: frozenset[str]
    bus: EventBus
    connections: ConnectionTable
    readiness: Readiness
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def router(self, router: Callable) -> RoleRouter:  # type: ignore[type-arg]
        return RoleRouter(router, self.roles)

    def install(self, app: web.Application) -> None:
        """Roles, the instance header and readiness; call before the app is set up."""
        install_http(app, self.roles, self.name)
        app[READINESS] = self.readiness


async def join(settings: Settings, store: Store) -> Membership:
    roles = parse_roles(settings.roles)
    name = settings.instance_name or f"{socket.gethostname()}@{settings.bind}"
    instance_id = f"{name}#{os.getpid()}-{uuid.uuid4().hex[:8]}"
    readiness = Readiness(instance=name, roles=tuple(sorted(roles)))
    if not is_postgres(settings.db_url):
        bus = EventBus()
        return Membership(name, instance_id, roles, bus, ConnectionTable(), readiness)
    pg_bus = PgEventBus(asyncpg_dsn(settings.db_url), instance_id, store)
    await pg_bus.start()
    readiness.checks["bus"] = lambda: pg_bus.ready
    return Membership(name, instance_id, roles, pg_bus,
                      ClusterConnectionTable(pg_bus, instance_id), readiness,
                      closers=[pg_bus.close])
