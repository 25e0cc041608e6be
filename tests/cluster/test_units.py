"""Roles and the PostgreSQL bus without a whole cluster."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import make_mocked_request

from integration.servers import create_pg_database
from opendps.cluster.roles import ALL_ROLES, RoleError, RoleRouter, http_role, parse_roles
from opendps.hub.pg_bus import PgEventBus
from opendps.protocol.mqtt import Connect
from opendps.store.interface import StoredDoc


def test_parse_roles() -> None:
    assert parse_roles("") == ALL_ROLES
    assert parse_roles("all") == ALL_ROLES
    assert parse_roles("DPS, hub") == {"dps", "hub"}
    with pytest.raises(RoleError):
        parse_roles("dps,queue")


def test_http_roles() -> None:
    def role(method: str, path: str) -> str | None:
        return http_role(make_mocked_request(method, path))

    assert role("PUT", "/0ne00000001/registrations/dev/register") == "dps"
    assert role("GET", "/0ne00000001/registrations/dev/operations/op") == "dps"
    assert role("GET", "/enrollments/x") == "api"
    assert role("PATCH", "/twins/dev") == "api"
    assert role("GET", "/opendps/health") is None
    assert role("GET", "/opendps/ready") is None


async def test_mqtt_roles() -> None:
    router = RoleRouter(lambda packet, endpoint: "session", frozenset({"hub"}))
    dps = Connect(client_id="d", username="0ne00000001/registrations/d/api-version=2019-03-31")
    hub = Connect(client_id="d", username="h.example/d/?api-version=2021-04-12")
    assert await router(dps, None).on_connect(dps) == 5
    assert router(hub, None) == "session"


class _Store:
    async def list_hubs(self) -> list:
        return []

    async def get_twin(self, hub: str, device_id: str) -> StoredDoc:
        doc = {"desired": {"big": "x" * 10_000}, "desiredVersion": 7}
        now = datetime.now(UTC)
        return StoredDoc(key=device_id, doc=doc, etag="e", created=now, updated=now)


@pytest.mark.postgres
async def test_pg_bus_between_two_instances() -> None:
    dsn = await asyncio.to_thread(create_pg_database)
    a = PgEventBus(dsn, "a", _Store())  # type: ignore[arg-type]
    b = PgEventBus(dsn, "b", _Store())  # type: ignore[arg-type]
    await a.start()
    await b.start()
    try:
        assert a.ready and b.ready
        on_a, stop_a = a.queue("desired:h:d")
        on_b, stop_b = b.queue("desired:h:d")
        a.publish("desired:h:d", {"small": 1, "$version": 2})
        assert (await asyncio.wait_for(on_a.get(), 1)) == {"small": 1, "$version": 2}
        assert (await asyncio.wait_for(on_b.get(), 5)) == {"small": 1, "$version": 2}
        a.publish("desired:h:d", {"big": "x" * 10_000, "$version": 7})  # over 8000 bytes
        await asyncio.wait_for(on_a.get(), 1)
        received = await asyncio.wait_for(on_b.get(), 5)
        assert received["$version"] == 7 and len(received["big"]) == 10_000
        await asyncio.sleep(0.2)
        assert on_a.empty()  # its own NOTIFY came back and was ignored
        stop_a()
        stop_b()
    finally:
        await a.close()
        await b.close()
