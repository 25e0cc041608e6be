"""Raw registry REST calls, independent of ``ExternalHub``, to check what it really wrote."""

from __future__ import annotations

import ssl
import urllib.parse
from typing import Any

import aiohttp

from integration.servers import ServerProcess
from opendps.protocol import connstr, sas

API = "api-version=2021-04-12"


def hub_connection_string(server: ServerProcess) -> str:
    return server.info["hubs"][0]["connectionString"]


async def raw(server: ServerProcess, method: str, path: str,
              body: Any = None) -> tuple[int, Any]:
    """One signed request to the server's first hub; returns (status, JSON or None)."""
    cs = connstr.parse(hub_connection_string(server))
    token = sas.generate(cs.host_name, cs.key, key_name=cs.key_name)
    context = ssl.create_default_context(cafile=server.info["caCertificate"])
    url = f"https://{cs.host_name}{path}?{API}"
    async with aiohttp.ClientSession() as session, session.request(
            method, url, json=body, ssl=context,
            headers={"Authorization": token, "If-Match": "*"}) as response:
        payload = await response.json(content_type=None) if response.status != 204 else None
        return response.status, payload


async def raw_device(server: ServerProcess, device_id: str) -> dict[str, Any] | None:
    status, body = await raw(server, "GET", f"/devices/{urllib.parse.quote(device_id, safe='')}")
    assert status in (200, 404), (status, body)
    return body if status == 200 else None
