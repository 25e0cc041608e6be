"""Decorator: a service API handler runs only for a SAS whose policy holds its right."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from .context import CONTEXT
from .service_auth import authorize
from .versions import require_service_api_version

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard(*rights: str) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            ctx = request.app[CONTEXT]
            for right in rights:
                await authorize(request.headers.get("Authorization"), audiences=[ctx.dps_host],
                                lookup=ctx.store.get_policy, right=right)
            require_service_api_version(request)
            return await handler(request)

        return run

    return wrap
