"""The HTTPS application: routing, WebSocket upgrade for MQTT, and errors in the right shape."""

from __future__ import annotations

import logging

from aiohttp import web

from ..hub.registry import RegistryError
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.ids import guid
from .context import CONTEXT, ApiContext
from .responses import dps_error_response, hub_error_response
from .routes import resolve

log = logging.getLogger("opendps.api")
MAX_BODY = 4 * 1024 * 1024


def _is_hub_path(path: str) -> bool:
    lowered = path.lower()
    return lowered.startswith(("/devices", "/twins", "/opendps/events"))


async def dispatch(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if request.headers.get("Upgrade", "").lower() == "websocket" and ctx.websocket:
        return await ctx.websocket(request)
    found = resolve(request.method, request.path)
    if found is None:
        raise DpsError(ErrorCode.NOT_FOUND, f"no such resource: {request.method} {request.path}")
    handler, params = found
    request.match_info.update(params)
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler):  # type: ignore[no-untyped-def]
    tracking_id = None  # made by the error response: a request that succeeds needs none
    try:
        return await handler(request)
    except DpsError as err:
        if _is_hub_path(request.path) and err.status in (404,):
            return hub_error_response(404, "NotFound", err.message)
        return dps_error_response(err, tracking_id)
    except RegistryError as err:
        return hub_error_response(err.status, err.code, err.message)
    except web.HTTPRequestEntityTooLarge:
        too_large = DpsError(ErrorCode.PAYLOAD_TOO_LARGE, "the request body is too large")
        return dps_error_response(too_large, tracking_id)
    except web.HTTPMethodNotAllowed as exc:
        return dps_error_response(
            DpsError(ErrorCode.METHOD_NOT_ALLOWED, f"{exc.method} is not allowed here"),
            tracking_id)
    except web.HTTPException:
        raise
    except Exception:
        tracking_id = guid()
        log.exception("internal error (trackingId %s)", tracking_id)
        return dps_error_response(
            DpsError(ErrorCode.INTERNAL, "An internal error occurred"), tracking_id)


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app[CONTEXT] = ctx
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
