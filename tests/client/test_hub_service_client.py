"""The hub registry client and the ndjson event stream against an in-process server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opendps.client.hub_service import HubServiceClient, ServiceError
from opendps.protocol import sas

KEY = "aHViIGtleSBmb3IgdGVzdHMgb2YgdGhlIGh1YiBjbGllbnQ="
HUB = "hub-1.example.net"
CS = f"HostName={HUB};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"


@pytest.fixture
async def hub() -> AsyncIterator[tuple[TestServer, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> None:
        text = await request.text()
        seen.append({"method": request.method, "path": request.path,
                     "query": dict(request.query), "headers": dict(request.headers),
                     "body": json.loads(text) if text else None})

    async def devices(request: web.Request) -> web.Response:
        await record(request)
        if request.headers.get("x-ms-continuation") == "p2":
            return web.json_response([{"deviceId": "d2"}])
        return web.json_response([{"deviceId": "d1"}], headers={"x-ms-continuation": "p2"})

    async def twin(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"deviceId": request.match_info["id"], "tags": {"a": 1}})

    async def device(request: web.Request) -> web.Response:
        await record(request)
        if request.match_info["id"] == "missing":
            return web.json_response(
                {"Message": "ErrorCode:DeviceNotFound;Device missing not found",
                 "ExceptionMessage": "Tracking ID:abc"}, status=404)
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response({"deviceId": request.match_info["id"]})

    async def events(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        lines = b"".join(json.dumps({"seq": n, "origin": "d1", "payload": f'{{"n":{n}}}'})
                         .encode() + b"\n" for n in (1, 2, 3))
        # split mid-line, and a heartbeat blank line, to exercise the reader
        await response.write(lines[:17])
        await asyncio.sleep(0.01)
        await response.write(lines[17:] + b"\n")
        if request.query.get("follow") == "true":
            await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_get("/devices", devices)
    app.router.add_route("*", "/devices/{id}", device)
    app.router.add_route("*", "/twins/{id}", twin)
    app.router.add_get("/opendps/events", events)
    server = TestServer(app)
    await server.start_server()
    yield server, seen
    await server.close()


def client_for(server: TestServer) -> HubServiceClient:
    return HubServiceClient.from_connection_string(CS, base_url=str(server.make_url("")))


async def test_list_devices_pages_and_signs_for_the_hub(hub: Any) -> None:
    server, seen = hub
    async with client_for(server) as client:
        devices = await client.list_devices()
    assert [d["deviceId"] for d in devices] == ["d1", "d2"]
    assert seen[0]["query"] == {"api-version": "2021-04-12"}
    token = sas.parse(seen[0]["headers"]["Authorization"])
    assert (token.resource, token.key_name) == (HUB, "iothubowner")
    assert sas.signature_matches(token, [KEY])


async def test_twin_patch_and_device_calls(hub: Any) -> None:
    server, seen = hub
    async with client_for(server) as client:
        twin = await client.update_twin("d1", {"properties": {"desired": {"x": 1}}})
        await client.get_device("d1")
        await client.delete_device("d1")
    assert twin["deviceId"] == "d1"
    assert seen[0]["method"] == "PATCH" and seen[0]["path"] == "/twins/d1"
    assert seen[0]["headers"]["If-Match"] == "*"
    assert seen[0]["body"] == {"properties": {"desired": {"x": 1}}}
    assert seen[2]["method"] == "DELETE" and seen[2]["headers"]["If-Match"] == "*"


async def test_hub_error_shape_is_parsed(hub: Any) -> None:
    server, _ = hub
    async with client_for(server) as client:
        with pytest.raises(ServiceError) as info:
            await client.get_device("missing")
    assert (info.value.status, info.value.error_code) == (404, "DeviceNotFound")
    assert info.value.message == "Device missing not found"


async def test_event_stream_reads_ndjson_across_chunks(hub: Any) -> None:
    server, seen = hub
    async with client_for(server) as client:
        got = [e async for e in client.events(device_id="d1", after=5, follow=False)]
    assert [e["seq"] for e in got] == [1, 2, 3]
    assert seen[0]["query"] == {"hub": HUB, "deviceId": "d1", "after": "5", "follow": "false"}
    assert seen[0]["headers"]["Accept"] == "application/x-ndjson"


async def test_followed_stream_is_bounded_by_the_caller(hub: Any) -> None:
    server, _ = hub
    got: list[dict[str, Any]] = []
    async with client_for(server) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async for event in client.events():
                    got.append(event)
    assert len(got) == 3
