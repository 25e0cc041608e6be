"""Liveness and readiness for load balancers and orchestrators. Liveness says the process
answers; readiness says it can do real work: the database answers, the listeners are up and,
in a cluster, events from other instances arrive. Neither needs authentication."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from .context import CONTEXT

DB_TIMEOUT = 2.0


@dataclass
class Readiness:
    """Filled in by the composition root as the parts come up."""

    instance: str = ""
    roles: tuple[str, ...] = ()
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)


READINESS = web.AppKey("opendps_readiness", Readiness)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    readiness = request.app.get(READINESS) or Readiness()
    checks: dict[str, bool] = {}
    try:
        await asyncio.wait_for(ctx.store.get_setting("id_scope"), DB_TIMEOUT)
        checks["database"] = True
    except Exception:
        checks["database"] = False
    for name, check in readiness.checks.items():
        try:
            checks[name] = bool(check())
        except Exception:
            checks[name] = False
    ok = all(checks.values())
    body = {"status": "ready" if ok else "unavailable", "instance": readiness.instance,
            "roles": list(readiness.roles), "checks": checks}
    return web.json_response(body, status=200 if ok else 503)
