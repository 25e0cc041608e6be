"""Instance roles: ``dps`` (device provisioning API over HTTPS and MQTT), ``hub`` (the built-in
hubs' MQTT endpoint) and ``api`` (service, admin and registry REST). A request for a role this
instance does not serve gets what a missing resource gets: 404 in the DPS error format over
HTTPS, CONNACK 5 over MQTT; the balancer or DNS should not send it here in the first place."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..protocol import dps_topics, hub_topics
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.mqtt import ConnAckCode, Connect, Packet

log = logging.getLogger("opendps.cluster")
ALL_ROLES = frozenset({"dps", "hub", "api"})
ALWAYS = ("opendps.api.health",)  # liveness and readiness answer on every instance
INSTANCE_HEADER = "x-opendps-instance"


class RoleError(ValueError):
    pass


def parse_roles(text: str | None) -> frozenset[str]:
    """``"dps,hub"`` -> {"dps", "hub"}; empty or ``all`` means every role."""
    names = {r.strip().lower() for r in (text or "").split(",") if r.strip()}
    if not names or names == {"all"}:
        return ALL_ROLES
    unknown = names - ALL_ROLES
    if unknown:
        raise RoleError(f"unknown role(s) {', '.join(sorted(unknown))}; "
                        f"choose from {', '.join(sorted(ALL_ROLES))}")
    return frozenset(names)


class _Refused:
    """A session that refuses CONNECT: this instance does not serve the role asked for."""

    def __init__(self, code: int) -> None:
        self.code = code

    async def on_connect(self, packet: Connect) -> int:
        return self.code

    async def on_packet(self, packet: Packet) -> None:  # never called: CONNECT was refused
        return None

    def on_close(self) -> None:
        return None


class RoleRouter:
    """Wraps the MQTT ``SessionRouter``: DPS usernames need ``dps``, hub usernames ``hub``."""

    def __init__(self, router: Callable[[Connect, Any], Any], roles: frozenset[str]) -> None:
        self.router = router
        self.roles = roles

    def __call__(self, packet: Connect, endpoint: Any) -> Any:
        username = packet.username or ""
        if dps_topics.parse_username(username) is not None:
            role = "dps"
        elif hub_topics.parse_username(username) is not None:
            role = "hub"
        else:
            role = None
        if role is not None and role not in self.roles:
            log.info("MQTT CONNECT for role %s refused: this instance serves %s",
                     role, ",".join(sorted(self.roles)))
            return _Refused(int(ConnAckCode.NOT_AUTHORIZED))
        return self.router(packet, endpoint)


def http_role(request: web.Request) -> str | None:
    """The role a request needs, or None when any instance answers it."""
    from ..api.routes import resolve

    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None  # MQTT over WebSocket: the MQTT router judges the CONNECT
    try:
        found = resolve(request.method, request.path)
    except web.HTTPMethodNotAllowed:
        return None
    if found is None:
        return None
    module = found[0].__module__
    if module in ALWAYS:
        return None
    return "dps" if module == "opendps.api.device" else "api"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def roles_middleware(roles: frozenset[str]) -> Any:
    @web.middleware
    async def check_role(request: web.Request, handler: Handler) -> web.StreamResponse:
        role = http_role(request)
        if role is not None and role not in roles:
            raise DpsError(ErrorCode.NOT_FOUND,
                           f"no such resource on this instance ({role} is served elsewhere)")
        return await handler(request)

    return check_role


def install_http(app: web.Application, roles: frozenset[str], instance_name: str) -> None:
    """Add the role check (inside the error middleware, so errors keep their shape) and the
    ``x-opendps-instance`` header on every response, errors included. Call before setup."""
    if roles != ALL_ROLES:
        app.middlewares.append(roles_middleware(roles))

    async def name_instance(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers[INSTANCE_HEADER] = instance_name

    app.on_response_prepare.append(name_instance)
