"""JSON responses in the services' exact shape: ``application/json; charset=utf-8`` always
(Node only parses bodies with that type, §8.7), DPS errors with ``x-ms-error-code``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..protocol import jsontext
from ..protocol.errors import DpsError
from ..protocol.ids import guid, token_hex

JSON = "application/json; charset=utf-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.Response(
        body=jsontext.dumpb(body), status=status,
        headers={"Content-Type": JSON, **(headers or {})})


def dps_error_headers(err: DpsError, tracking_id: str) -> dict[str, str]:
    """Shared with ``device_wire``, which writes the same errors without aiohttp."""
    headers = {"x-ms-error-code": str(int(err.code)), "x-ms-request-id": tracking_id}
    if err.status == 429:
        headers["retry-after"] = "1"
    return headers


def dps_error_response(err: DpsError, tracking_id: str | None = None) -> web.Response:
    tracking_id = tracking_id or guid()
    return json_response(err.body(tracking_id), err.status, dps_error_headers(err, tracking_id))


def hub_error_response(status: int, code: str, message: str) -> web.Response:
    """IoT Hub's error shape (``Message`` with an ``ErrorCode:`` prefix)."""
    tracking = token_hex()
    return json_response(
        {"Message": f"ErrorCode:{code};{message}",
         "ExceptionMessage": f"Tracking ID:{tracking}"},
        status, {"iothub-errorcode": code})
