"""IoT Hub registry REST client (protocol.md §7.3) plus opendps's telemetry event stream.

The registry part works against Azure IoT Hub too; ``events`` reads the ndjson stream that only
opendps serves (``GET /opendps/events``), our stand-in for the hub's Event Hubs endpoint.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from ..protocol import connstr
from ._http import RestClient, ServiceError, check, if_match_header

API_VERSION = "2021-04-12"
EVENTS_PATH = "/opendps/events"

__all__ = ["API_VERSION", "HubServiceClient", "ServiceError"]


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class HubServiceClient(RestClient):
    """One client per hub connection string; use as ``async with``."""

    api_version = API_VERSION

    @classmethod
    def from_connection_string(cls, text: str, *, ca_file: str | Path | None = None,
                               port: int = 443, base_url: str | None = None,
                               ) -> HubServiceClient:
        return cls(connstr.parse(text), ca_file=ca_file, port=port, base_url=base_url)

    @property
    def host_name(self) -> str:
        return self.connection.host_name

    # -- device identities -------------------------------------------------------------------
    async def list_devices(self) -> list[dict[str, Any]]:
        """All identities; follows ``x-ms-continuation`` if the server pages."""
        out: list[dict[str, Any]] = []
        continuation: str | None = None
        while True:
            headers = {"x-ms-continuation": continuation} if continuation else {}
            body, response_headers = await self.call("GET", "/devices", headers=headers)
            out.extend(body or [])
            continuation = response_headers.get("x-ms-continuation")
            if not continuation:
                return out

    async def get_device(self, device_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/devices/{_seg(device_id)}")
        return body

    async def create_or_update_device(self, device: dict[str, Any], *,
                                      if_match: str | None = None) -> dict[str, Any]:
        body, _ = await self.call("PUT", f"/devices/{_seg(device['deviceId'])}", body=device,
                                  headers=if_match_header(if_match))
        return body

    async def delete_device(self, device_id: str, *, if_match: str | None = "*") -> None:
        await self.call("DELETE", f"/devices/{_seg(device_id)}",
                        headers=if_match_header(if_match))

    # -- twins --------------------------------------------------------------------------------
    async def get_twin(self, device_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/twins/{_seg(device_id)}")
        return body

    async def update_twin(self, device_id: str, patch: dict[str, Any], *,
                          if_match: str | None = "*") -> dict[str, Any]:
        """PATCH merges ``tags`` and ``properties.desired`` (null deletes a key)."""
        body, _ = await self.call("PATCH", f"/twins/{_seg(device_id)}", body=patch,
                                  headers=if_match_header(if_match))
        return body

    # -- telemetry events ----------------------------------------------------------------------
    async def events(self, *, device_id: str | None = None, after: int = 0,
                     follow: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Events of this hub after ``after`` (a sequence number), one dict per ndjson line.

        With ``follow`` the server keeps the response open and the iterator never ends on its
        own; the caller bounds it (``asyncio.timeout``).
        """
        params = {"hub": self.host_name, "after": str(after),
                  "follow": "true" if follow else "false"}
        if device_id:
            params["deviceId"] = device_id
        url = self.url(EVENTS_PATH) + "?" + urllib.parse.urlencode(params)
        headers = self.headers({"Accept": "application/x-ndjson"})
        # no total timeout: a followed stream is meant to stay open
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with self.session.get(url, headers=headers, ssl=self._ssl,
                                    timeout=timeout) as response:
            await check(response)
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)
