"""The provisioning engine with the in-memory store and the built-in hub, no sockets:
attestation, assignment, idempotency, the disabled path and error outcomes."""

from __future__ import annotations

import json

import pytest

from opendps.hub.builtin import BuiltinHub
from opendps.hub.bus import EventBus
from opendps.hub.connections import ConnectionTable
from opendps.protocol import sas
from opendps.protocol.enrollment import validate_group, validate_individual
from opendps.protocol.errors import DpsError
from opendps.provisioning.engine import ProvisioningEngine, RegistrationRequest
from opendps.store import MemoryStore
from opendps.store.interface import HubRecord

SCOPE = "0ne00TEST01"
HUB = "hub-a.local"


class Directory:
    def __init__(self, store: MemoryStore, hub: BuiltinHub) -> None:
        self.store, self.hub = store, hub

    async def linked(self) -> list[HubRecord]:
        return await self.store.list_hubs()

    def port(self, host: str) -> BuiltinHub | None:
        return self.hub if host.lower() == HUB else None


@pytest.fixture
async def env():  # type: ignore[no-untyped-def]
    store = MemoryStore()
    await store.put_hub(HubRecord(HUB, True, None))
    hub = BuiltinHub(store, HUB, EventBus(), ConnectionTable(), telemetry_keep=100)
    engine = ProvisioningEngine(store, Directory(store, hub), id_scope=SCOPE)
    return store, hub, engine


async def _enroll(store, doc, kind="individual"):  # type: ignore[no-untyped-def]
    key = doc.get("registrationId") or doc["enrollmentGroupId"]
    doc = validate_individual(doc, key) if kind == "individual" else validate_group(doc, key)
    await store.put_enrollment(kind, key.lower(), doc, if_match=None,
                               attestation_type=doc["attestation"]["type"],
                               enabled=doc["provisioningStatus"] == "enabled")
    return doc


def _req(reg_id: str, key: str, body: dict | None = None) -> RegistrationRequest:
    token = sas.generate(f"{SCOPE}/registrations/{reg_id}", key)
    return RegistrationRequest(SCOPE, reg_id, token,
                               json.dumps(body or {"registrationId": reg_id}).encode())


async def _register_and_poll(engine, req):  # type: ignore[no-untyped-def]
    reply = await engine.register(req)
    assert reply.status == 202 and reply.body["status"] == "assigning"
    return await engine.operation_status(req, reply.body["operationId"])


async def test_individual_assignment_creates_identity_and_twin(env) -> None:  # type: ignore[no-untyped-def]
    store, hub, engine = env
    doc = await _enroll(store, {
        "registrationId": "dev-1", "attestation": {"type": "symmetricKey"},
        "capabilities": {"iotEdge": True},
        "initialTwin": {"tags": {"t": 1}, "properties": {"desired": {"d": 2}}}})
    keys = doc["attestation"]["symmetricKey"]
    polled = await _register_and_poll(engine, _req("dev-1", keys["secondaryKey"]))
    assert polled.status == 200 and polled.body["status"] == "assigned"
    state = polled.body["registrationState"]
    assert state["assignedHub"] == HUB and state["deviceId"] == "dev-1"
    device = await hub.registry.get("dev-1")
    assert device.doc["authentication"]["symmetricKey"] == keys
    assert device.doc["capabilities"] == {"iotEdge": True}
    twin = await hub.twins.get("dev-1")
    assert twin.doc["tags"] == {"t": 1} and twin.doc["desired"] == {"d": 2}


async def test_group_device_gets_derived_keys(env) -> None:  # type: ignore[no-untyped-def]
    store, hub, engine = env
    doc = await _enroll(store, {"enrollmentGroupId": "g1",
                                "attestation": {"type": "symmetricKey"}}, "group")
    keys = doc["attestation"]["symmetricKey"]
    derived = sas.derive_device_key(keys["primaryKey"], "sensor-9")
    polled = await _register_and_poll(engine, _req("sensor-9", derived))
    assert polled.body["registrationState"]["symmetricKey"] == {"enrollmentGroupId": "g1"}
    device = await hub.registry.get("sensor-9")
    assert device.doc["authentication"]["symmetricKey"] == {
        "primaryKey": derived,
        "secondaryKey": sas.derive_device_key(keys["secondaryKey"], "sensor-9")}
    record = await store.get_registration("sensor-9")
    assert record is not None


async def test_individual_enrollment_shadows_group(env) -> None:  # type: ignore[no-untyped-def]
    store, _, engine = env
    group = await _enroll(store, {"enrollmentGroupId": "g2",
                                  "attestation": {"type": "symmetricKey"}}, "group")
    await _enroll(store, {"registrationId": "dev-x", "attestation": {"type": "symmetricKey"}})
    derived = sas.derive_device_key(group["attestation"]["symmetricKey"]["primaryKey"], "dev-x")
    with pytest.raises(DpsError) as err:
        await engine.register(_req("dev-x", derived))
    assert err.value.code == 401002 and err.value.message == "Unauthorized"


async def test_reregistration_keeps_hub_created_time_and_twin(env) -> None:  # type: ignore[no-untyped-def]
    store, hub, engine = env
    doc = await _enroll(store, {
        "registrationId": "dev-2", "attestation": {"type": "symmetricKey"},
        "initialTwin": {"properties": {"desired": {"v": 1}}}})
    key = doc["attestation"]["symmetricKey"]["primaryKey"]
    first = await _register_and_poll(engine, _req("dev-2", key))
    await hub.twins.patch_desired("dev-2", {"v": 5})
    second = await _register_and_poll(engine, _req("dev-2", key))
    a, b = first.body["registrationState"], second.body["registrationState"]
    assert a["createdDateTimeUtc"] == b["createdDateTimeUtc"] and a["etag"] != b["etag"]
    assert (await hub.twins.get("dev-2")).doc["desired"] == {"v": 5}


async def test_disabled_group_fails_after_attestation(env) -> None:  # type: ignore[no-untyped-def]
    store, hub, engine = env
    doc = await _enroll(store, {"enrollmentGroupId": "g3", "provisioningStatus": "disabled",
                                "attestation": {"type": "symmetricKey"}}, "group")
    derived = sas.derive_device_key(doc["attestation"]["symmetricKey"]["primaryKey"], "d3")
    polled = await _register_and_poll(engine, _req("d3", derived))
    assert polled.body["status"] == "failed"
    assert polled.body["registrationState"]["errorCode"] == 403001
    assert await hub.registry.get("d3") is None
    assert (await store.get_registration("d3")).doc["status"] == "disabled"


async def test_poll_of_someone_elses_operation_is_not_found(env) -> None:  # type: ignore[no-untyped-def]
    store, _, engine = env
    a = await _enroll(store, {"registrationId": "pa", "attestation": {"type": "symmetricKey"}})
    b = await _enroll(store, {"registrationId": "pb", "attestation": {"type": "symmetricKey"}})
    reply = await engine.register(_req("pa", a["attestation"]["symmetricKey"]["primaryKey"]))
    with pytest.raises(DpsError) as err:
        await engine.operation_status(_req("pb", b["attestation"]["symmetricKey"]["primaryKey"]),
                                      reply.body["operationId"])
    assert err.value.code == 404202


async def test_enrollment_hub_not_linked_fails(env) -> None:  # type: ignore[no-untyped-def]
    store, _, engine = env
    doc = await _enroll(store, {"registrationId": "nh", "iotHubs": ["elsewhere.local"],
                                "attestation": {"type": "symmetricKey"}})
    polled = await _register_and_poll(
        engine, _req("nh", doc["attestation"]["symmetricKey"]["primaryKey"]))
    assert polled.body["status"] == "failed"
    assert polled.body["registrationState"]["errorCode"] == 400210
