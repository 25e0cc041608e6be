"""``ExternalHub`` against a real opendps: what it writes is checked with raw registry GETs."""

from __future__ import annotations

import base64
import os
import uuid

import aiohttp

from integration.servers import ServerProcess
from opendps.hub.external import ExternalHub
from opendps.protocol import connstr
from opendps.provisioning.hub_port import DeviceSpec

from .registry_raw import hub_connection_string, raw, raw_device


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_host_name_comes_from_the_connection_string(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    assert external.host_name == opendps_server.host
    key = connstr.parse(hub_connection_string(opendps_server)).key
    assert key not in repr(external) and key not in str(vars(external))


async def test_create_sas_device(external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id, k1, k2 = _id("sas"), _key(), _key()
    assert not await external.device_exists(device_id)
    await external.create_or_update_device(DeviceSpec(device_id, k1, k2))
    assert await external.device_exists(device_id)
    device = await raw_device(opendps_server, device_id)
    assert device is not None
    assert device["deviceId"] == device_id and device["status"] == "enabled"
    assert device["authentication"]["type"] == "sas"
    assert device["authentication"]["symmetricKey"] == {"primaryKey": k1, "secondaryKey": k2}
    assert device["capabilities"] == {"iotEdge": False}


async def test_update_changes_keys_and_keeps_generation_id(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id = _id("upd")
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key()))
    before = await raw_device(opendps_server, device_id)
    k3, k4 = _key(), _key()
    await external.create_or_update_device(DeviceSpec(device_id, k3, k4))
    after = await raw_device(opendps_server, device_id)
    assert before is not None and after is not None
    assert after["authentication"]["symmetricKey"] == {"primaryKey": k3, "secondaryKey": k4}
    assert after["generationId"] == before["generationId"]
    assert after["etag"] != before["etag"]


async def test_missing_keys_are_generated_by_the_hub(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id = _id("gen")
    await external.create_or_update_device(DeviceSpec(device_id))
    device = await raw_device(opendps_server, device_id)
    assert device is not None
    keys = device["authentication"]["symmetricKey"]
    assert keys["primaryKey"] and keys["secondaryKey"]


async def test_self_signed_identity(external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id, t1, t2 = _id("x509"), "A" * 40, "B" * 40
    await external.create_or_update_device(
        DeviceSpec(device_id, auth_type="selfSigned", thumbprints=(t1, t2)))
    device = await raw_device(opendps_server, device_id)
    assert device is not None
    assert device["authentication"]["type"] == "selfSigned"
    assert device["authentication"]["x509Thumbprint"] == {
        "primaryThumbprint": t1, "secondaryThumbprint": t2}
    # one thumbprint: the secondary is empty
    await external.create_or_update_device(
        DeviceSpec(device_id, auth_type="selfSigned", thumbprints=(t2,)))
    device = await raw_device(opendps_server, device_id)
    assert device is not None
    assert device["authentication"]["x509Thumbprint"]["primaryThumbprint"] == t2
    assert not device["authentication"]["x509Thumbprint"]["secondaryThumbprint"]


async def test_certificate_authority_identity_replaces_sas(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id = _id("ca")
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key()))
    generation = (await raw_device(opendps_server, device_id) or {})["generationId"]
    await external.create_or_update_device(DeviceSpec(device_id, auth_type="certificateAuthority"))
    device = await raw_device(opendps_server, device_id)
    assert device is not None
    assert device["authentication"]["type"] == "certificateAuthority"
    assert device["generationId"] == generation


async def test_iot_edge_flag(external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id = _id("edge")
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key(), iot_edge=True))
    assert (await raw_device(opendps_server, device_id) or {})["capabilities"] == {"iotEdge": True}
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key(), iot_edge=False))
    assert (await raw_device(opendps_server, device_id) or {})["capabilities"] == {
        "iotEdge": False}


async def test_status_set_by_an_operator_is_kept(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    """Like the built-in hub: DPS re-registering a device does not re-enable it."""
    device_id = _id("dis")
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key()))
    device = await raw_device(opendps_server, device_id) or {}
    status, _ = await raw(opendps_server, "PUT", f"/devices/{device_id}",
                          dict(device, status="disabled"))
    assert status == 200
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key()))
    assert (await raw_device(opendps_server, device_id) or {})["status"] == "disabled"


async def test_initial_twin_applied_and_read_back(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id = _id("twin")
    assert await external.get_twin(device_id) is None
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key()))
    assert await external.get_twin(device_id) == {
        "tags": {}, "desired": {}, "reported": {}, "desiredVersion": 1, "reportedVersion": 1,
        "version": 1}
    tags = {"site": "north", "dropped": None}
    desired = {"interval": 5, "nested": {"a": 1, "gone": None}}
    await external.apply_initial_twin(device_id, tags, desired)
    twin = await external.get_twin(device_id)
    assert twin == {"tags": {"site": "north"}, "desired": {"interval": 5, "nested": {"a": 1}},
                    "reported": {}, "desiredVersion": 2, "reportedVersion": 1, "version": 2}
    status, body = await raw(opendps_server, "GET", f"/twins/{device_id}")
    assert status == 200 and body["properties"]["desired"]["interval"] == 5
    # a second initial twin replaces, it does not merge
    await external.apply_initial_twin(device_id, {"other": True}, {})
    twin = await external.get_twin(device_id)
    assert twin is not None
    assert twin["tags"] == {"other": True} and twin["desired"] == {}


async def test_delete_and_delete_missing(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id = _id("del")
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key()))
    await external.delete_device(device_id)
    assert not await external.device_exists(device_id)
    assert await raw_device(opendps_server, device_id) is None
    assert await external.get_twin(device_id) is None
    await external.delete_device(device_id)  # already gone: fine
    await external.delete_device(_id("never"))


async def test_odd_device_ids_are_escaped(
        external: ExternalHub, opendps_server: ServerProcess) -> None:
    device_id = f"odd:{uuid.uuid4().hex[:6]}.x_y-z+w@v"
    await external.create_or_update_device(DeviceSpec(device_id, _key(), _key()))
    assert await external.device_exists(device_id)
    assert (await raw_device(opendps_server, device_id) or {})["deviceId"] == device_id
    await external.apply_initial_twin(device_id, {"t": 1}, {})
    assert (await external.get_twin(device_id) or {})["tags"] == {"t": 1}
    await external.delete_device(device_id)
    assert not await external.device_exists(device_id)


async def test_a_given_session_is_used_and_left_open(opendps_server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session:
        hub = ExternalHub(hub_connection_string(opendps_server),
                          ca_file=opendps_server.info["caCertificate"], session=session)
        assert not await hub.device_exists(_id("none"))
        await hub.close()
        assert not session.closed
