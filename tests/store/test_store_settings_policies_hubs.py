"""Contract: instance settings, access policies and hub records."""

from __future__ import annotations

import asyncio

from opendps.store import AccessPolicy, HubRecord, Store


async def test_settings_absent_then_first_value_wins(store: Store) -> None:
    assert await store.get_setting("id_scope") is None
    assert await store.setting_if_absent("id_scope", "0ne00000001") == "0ne00000001"
    assert await store.setting_if_absent("id_scope", "0ne00000002") == "0ne00000001"
    assert await store.get_setting("id_scope") == "0ne00000001"
    assert await store.get_setting("ID_SCOPE") is None  # setting keys are case-sensitive


async def test_put_setting_overwrites(store: Store) -> None:
    await store.put_setting("server_cert", "v1")
    assert await store.get_setting("server_cert") == "v1"
    await store.put_setting("server_cert", "v2")
    assert await store.get_setting("server_cert") == "v2"
    assert await store.setting_if_absent("server_cert", "v3") == "v2"


async def test_setting_if_absent_race_has_one_winner(store: Store) -> None:
    results = await asyncio.gather(
        *(store.setting_if_absent("root_key", f"candidate-{i}") for i in range(2))
    )
    assert results[0] == results[1]
    assert await store.get_setting("root_key") == results[0]


async def test_policies_put_get_list_replace(store: Store) -> None:
    assert await store.list_policies() == []
    assert await store.get_policy("provisioningserviceowner") is None
    owner = AccessPolicy("provisioningserviceowner", "p1", "s1", frozenset({"ServiceConfig"}))
    reader = AccessPolicy("reader", "p2", "s2", frozenset({"EnrollmentRead", "RegistrationRead"}))
    await store.put_policy(reader)
    await store.put_policy(owner)
    assert await store.list_policies() == [owner, reader]
    assert await store.get_policy("reader") == reader
    rotated = AccessPolicy("reader", "p3", "s3", frozenset())
    await store.put_policy(rotated)
    assert await store.get_policy("reader") == rotated
    assert len(await store.list_policies()) == 2


async def test_hubs_put_get_list_replace(store: Store) -> None:
    assert await store.list_hubs() == []
    built_in = HubRecord(
        "b.azure-devices.net", True, None, policies={"iothubowner": ["p", "s", ["RegistryWrite"]]}
    )
    external = HubRecord(
        "a.example.net", False, "HostName=a.example.net;SharedAccessKeyName=x;SharedAccessKey=y",
        allocation_weight=3, apply_allocation_policy=False, location="westeurope",
    )
    await store.put_hub(built_in)
    await store.put_hub(external)
    assert await store.list_hubs() == [external, built_in]
    assert await store.get_hub("b.azure-devices.net") == built_in
    assert await store.get_hub("missing.example.net") is None
    moved = HubRecord("a.example.net", False, "HostName=a.example.net;x=y", location="eastus")
    await store.put_hub(moved)
    assert await store.get_hub("a.example.net") == moved
    assert len(await store.list_hubs()) == 2


async def test_hub_policies_are_not_aliased(store: Store) -> None:
    policies: dict[str, object] = {"owner": ["p", "s", ["RegistryWrite"]]}
    await store.put_hub(HubRecord("h.example.net", True, None, policies=policies))
    policies["intruder"] = 1
    got = await store.get_hub("h.example.net")
    assert got is not None and "intruder" not in got.policies
    got.policies["intruder"] = 2
    again = await store.get_hub("h.example.net")
    assert again is not None and "intruder" not in again.policies


async def test_delete_hub(store: Store) -> None:
    import pytest

    from opendps.store.interface import NotFound

    await store.put_hub(HubRecord("gone.example.net", True, None))
    await store.put_hub(HubRecord("kept.example.net", True, None))
    await store.delete_hub("gone.example.net")
    assert [h.host_name for h in await store.list_hubs()] == ["kept.example.net"]
    with pytest.raises(NotFound):
        await store.delete_hub("gone.example.net")
