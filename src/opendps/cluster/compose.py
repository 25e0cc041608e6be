"""What ``server.start`` calls to become a cluster member: the bus and connection table for
the database in use, and the HTTP additions (roles, instance header, readiness). PostgreSQL:
LISTEN/NOTIFY between instances (and between the workers of each). SQLite: one server is the
whole service; its worker processes (``serve --workers N``) are its members and talk over unix
datagrams, and a single process keeps the in-process ``EventBus``."""

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
from ..hub.unix_bus import UnixEventBus
from ..store.interface import Store
from .connections import ClusterConnectionTable
from .roles import RoleRouter, install_http, parse_roles
from .worker import WorkerSlot


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


async def join(settings: Settings, store: Store, worker: WorkerSlot | None = None) -> Membership:
    roles = parse_roles(settings.roles)
    name = settings.instance_name or f"{socket.gethostname()}@{settings.bind}"
    if worker is not None:
        name = f"{name}/w{worker.index}"  # workers answer apart in x-opendps-instance
    instance_id = f"{name}#{os.getpid()}-{uuid.uuid4().hex[:8]}"
    readiness = Readiness(instance=name, roles=tuple(sorted(roles)))
    bus: PgEventBus | UnixEventBus
    if is_postgres(settings.db_url):
        bus = PgEventBus(asyncpg_dsn(settings.db_url), instance_id, store)
    elif worker is not None and worker.count > 1:
        bus = UnixEventBus(worker.socket_path(worker.index), worker.peer_paths(), instance_id,
                           store)
    else:
        return Membership(name, instance_id, roles, EventBus(), ConnectionTable(), readiness)
    await bus.start()
    readiness.checks["bus"] = lambda: bus.ready
    # one hub connection per device across members: attaching here drops the older elsewhere
    return Membership(name, instance_id, roles, bus, ClusterConnectionTable(bus, instance_id),
                      readiness, closers=[bus.close])
