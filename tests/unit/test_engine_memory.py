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
    # another instance on the same store has nothing in memory and reads it
    other = ProvisioningEngine(store, Directory(store, hub), id_scope=engine.id_scope)
    again = await other.operation_status(req, reply.body["operationId"])
    assert again.body == polled.body and reads == [1]
    # a remembered operation is still only the registration's own
    stranger = _req("dev-2", sas.derive_device_key(key, "dev-2"))
    with pytest.raises(DpsError) as caught:
        await engine.operation_status(stranger, reply.body["operationId"])
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
