"""What the engine remembers between a device's requests: final operations for the poll, and
tokens that verified (AttestationMemo). Neither may answer differently from the store."""

from __future__ import annotations

import pytest
import test_engine
from test_engine import Directory, _enroll, _req

from opendps.protocol import sas
from opendps.protocol.errors import DpsError, ErrorCode
from opendps.provisioning import attest
from opendps.provisioning.engine import ProvisioningEngine

env = test_engine.env  # the engine, the memory store and the built-in hub (a fixture)


def _count(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


async def _group(store, name="g"):  # type: ignore[no-untyped-def]
    doc = await _enroll(store, {"enrollmentGroupId": name,
                                "attestation": {"type": "symmetricKey"}}, "group")
    return doc["attestation"]["symmetricKey"]["primaryKey"]


async def test_the_poll_after_a_register_reads_no_operation(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, hub, engine = env
    key = await _group(store)
    req = _req("dev-1", sas.derive_device_key(key, "dev-1"))
    reads = [0]
    get_operation = store.get_operation

    async def counted(operation_id: str):  # type: ignore[no-untyped-def]
        reads[0] += 1
        return await get_operation(operation_id)

    monkeypatch.setattr(store, "get_operation", counted)
    reply = await engine.register(req)
    polled = await engine.operation_status(req, reply.body["operationId"])
    assert polled.status == 200 and polled.body["status"] == "assigned"
    assert reads == [0]
    # another instance on the same store has nothing in memory: it answers from the
    # registration record, which holds its operation; no row of its own was written
    other = ProvisioningEngine(store, Directory(store, hub), id_scope=engine.id_scope)
    again = await other.operation_status(req, reply.body["operationId"])
    assert again.status == 200 and again.body == polled.body and reads == [0]
    assert await get_operation(reply.body["operationId"]) is None
    # a remembered operation is still only the registration's own
    stranger = _req("dev-2", sas.derive_device_key(key, "dev-2"))
    with pytest.raises(DpsError) as caught:
        await engine.operation_status(stranger, reply.body["operationId"])
    assert caught.value.code is ErrorCode.OPERATION_NOT_FOUND


async def _both_instances(store, hub, engine, req):  # type: ignore[no-untyped-def]
    """The poll answered by the registering engine (from memory) and by a fresh one."""
    reply = await engine.register(req)
    mine = await engine.operation_status(req, reply.body["operationId"])
    other = ProvisioningEngine(store, Directory(store, hub), id_scope=engine.id_scope)
    theirs = await other.operation_status(req, reply.body["operationId"])
    return reply.body["operationId"], mine, theirs


async def test_a_failed_outcome_reads_back_the_same_from_the_record(env) -> None:  # type: ignore[no-untyped-def]
    """Disabled (stored as "disabled", shown as "failed") and a hub that is not linked."""
    store, hub, engine = env
    doc = await _enroll(store, {"enrollmentGroupId": "off", "provisioningStatus": "disabled",
                                "attestation": {"type": "symmetricKey"}}, "group")
    key = doc["attestation"]["symmetricKey"]["primaryKey"]
    _, mine, theirs = await _both_instances(
        store, hub, engine, _req("d-off", sas.derive_device_key(key, "d-off")))
    assert (await store.get_registration("d-off")).doc["status"] == "disabled"
    assert mine.body["status"] == "failed" and mine.body["registrationState"]["status"] == "failed"
    assert theirs.status == mine.status == 200 and theirs.body == mine.body
    ind = await _enroll(store, {"registrationId": "nh", "iotHubs": ["elsewhere.local"],
                                "attestation": {"type": "symmetricKey"}})
    _, mine, theirs = await _both_instances(
        store, hub, engine, _req("nh", ind["attestation"]["symmetricKey"]["primaryKey"]))
    assert mine.body["registrationState"]["errorCode"] == 400210
    assert theirs.body == mine.body


async def test_only_the_latest_operation_of_a_registration_is_kept(env) -> None:  # type: ignore[no-untyped-def]
    """A registration again replaces the record, and its operation with it: the earlier one
    is found only where it is still in memory."""
    store, hub, engine = env
    key = await _group(store)
    req = _req("dev-1", sas.derive_device_key(key, "dev-1"))
    first, _, _ = await _both_instances(store, hub, engine, req)
    second, _, theirs = await _both_instances(store, hub, engine, req)
    assert theirs.body["operationId"] == second != first
    assert (await engine.operation_status(req, first)).status == 200  # still in memory
    other = ProvisioningEngine(store, Directory(store, hub), id_scope=engine.id_scope)
    with pytest.raises(DpsError) as caught:
        await other.operation_status(req, first)
    assert caught.value.code is ErrorCode.OPERATION_NOT_FOUND


async def test_a_repeated_token_skips_the_signature_check(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, _hub, engine = env
    key = await _group(store)
    checks = _count(monkeypatch, attest.sas, "signature_matches")
    req = _req("dev-1", sas.derive_device_key(key, "dev-1"))
    reply = await engine.register(req)
    assert checks == [1]
    await engine.operation_status(req, reply.body["operationId"])
    assert checks == [1]
    # a wrong token is never remembered: each attempt pays the whole check
    wrong = _req("dev-1", sas.derive_device_key(await _group(store, "other"), "dev-x"))
    for attempt in (1, 2):
        with pytest.raises(DpsError) as caught:
            await engine.register(wrong)
        assert caught.value.code is ErrorCode.UNAUTHORIZED
        assert checks[0] >= 1 + 2 * attempt  # both groups tried, both times


async def test_a_changed_group_key_refuses_the_remembered_token(env) -> None:  # type: ignore[no-untyped-def]
    store, _hub, engine = env
    key = await _group(store)
    req = _req("dev-1", sas.derive_device_key(key, "dev-1"))
    reply = await engine.register(req)
    await _enroll(store, {"enrollmentGroupId": "g", "attestation": {
        "type": "symmetricKey", "symmetricKey": {}}}, "group")  # new keys, new etag
    with pytest.raises(DpsError) as caught:
        await engine.operation_status(req, reply.body["operationId"])
    assert caught.value.code is ErrorCode.UNAUTHORIZED


async def test_a_new_individual_enrollment_decides_over_the_remembered_group(env) -> None:  # type: ignore[no-untyped-def]
    store, _hub, engine = env
    key = await _group(store)
    req = _req("dev-1", sas.derive_device_key(key, "dev-1"))
    await engine.register(req)
    await _enroll(store, {"registrationId": "dev-1", "attestation": {"type": "symmetricKey"}})
    with pytest.raises(DpsError) as caught:
        await engine.register(req)  # the enabled individual entry's own keys decide now
    assert caught.value.code is ErrorCode.UNAUTHORIZED


async def test_a_removed_group_refuses_the_remembered_token(env) -> None:  # type: ignore[no-untyped-def]
    store, _hub, engine = env
    key = await _group(store)
    req = _req("dev-1", sas.derive_device_key(key, "dev-1"))
    await engine.register(req)
    await store.delete_enrollment("group", "g", if_match=None)
    with pytest.raises(DpsError) as caught:
        await engine.register(req)
    assert caught.value.code is ErrorCode.UNAUTHORIZED


async def test_an_expired_token_is_not_taken_from_memory(env) -> None:  # type: ignore[no-untyped-def]
    store, _hub, engine = env
    key = await _group(store)
    token = sas.generate(f"{engine.id_scope}/registrations/dev-1",
                         sas.derive_device_key(key, "dev-1"), ttl=60, now=1_000_000)
    from opendps.provisioning.engine import RegistrationRequest
    req = RegistrationRequest(engine.id_scope, "dev-1", token, b"")
    engine._wall = lambda: 1_000_000.0
    reply = await engine.register(req)
    engine._wall = lambda: 1_000_061.0
    with pytest.raises(DpsError) as caught:
        await engine.operation_status(req, reply.body["operationId"])
    assert caught.value.code is ErrorCode.UNAUTHORIZED
