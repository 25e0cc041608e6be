"""The sample webhook (``examples/custom_allocation_webhook.py``) served in process and called
through the real ``WebhookAllocator``: the tutorial's toaster and heat-pump flows end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest

from opendps.protocol.errors import DpsError, ErrorCode
from opendps.provisioning.webhook import AllocationRequest, WebhookAllocator

from .conftest import serve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_allocation_webhook.py"
TOASTERS = "contoso-toasters-hub-1098.azure-devices.net"
HEATPUMPS = "contoso-heatpumps-hub-1098.azure-devices.net"
OTHER = "contoso-other-hub-1098.azure-devices.net"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("custom_allocation_webhook", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


sample = load_example()


@pytest.fixture
async def sample_url():  # type: ignore[no-untyped-def]
    async with serve(sample.make_app()) as base:
        yield f"{base}/api/HttpTrigger1?code=function-key"


def request(url: str, reg_id: str, hubs: list[str] | None = None) -> AllocationRequest:
    return AllocationRequest(
        webhook_url=url, enrollment_kind="group",
        enrollment={"enrollmentGroupId": "contoso-custom-allocated-devices",
                    "attestation": {"type": "symmetricKey"}, "allocationPolicy": "custom"},
        registration_id=reg_id, attestation=("symmetricKey", {}),
        payload={"MyDeviceFirmwareVersion": "12.0.2.5"},
        linked_hubs=hubs if hubs is not None else [OTHER, TOASTERS, HEATPUMPS])


@pytest.fixture
async def allocator():  # type: ignore[no-untyped-def]
    async def no_sleep(_: float) -> None:
        raise AssertionError("the sample webhook never asks for a retry")

    async with WebhookAllocator(sleep=no_sleep) as alloc:
        yield alloc


async def test_toaster_goes_to_the_toasters_hub(allocator: WebhookAllocator,
                                                sample_url: str) -> None:
    result = await allocator.allocate(request(sample_url, "breakroom499-contoso-tstrsd-007"))
    assert result.hub == TOASTERS
    assert result.initial_twin == {
        "tags": {"deviceType": "toaster"},
        "properties": {"desired": {"state": "ready", "darknessSetting": "medium"}}}
    assert "toaster" in result.payload["sampleResponse"]
    assert result.payload["devicePayload"] == {"MyDeviceFirmwareVersion": "12.0.2.5"}


async def test_heat_pump_goes_to_the_heat_pumps_hub(allocator: WebhookAllocator,
                                                    sample_url: str) -> None:
    result = await allocator.allocate(request(sample_url, "mainbuilding167-contoso-hpsd-088"))
    assert result.hub == HEATPUMPS
    assert result.initial_twin == {
        "tags": {"deviceType": "heatpump"},
        "properties": {"desired": {"state": "on", "temperatureSetting": "65"}}}


@pytest.mark.parametrize("reg_id", ["contoso-heatpump-088", "mainbuilding167-contoso-hpsd-008"])
async def test_unknown_device_is_400207(allocator: WebhookAllocator, sample_url: str,
                                        reg_id: str) -> None:
    # "-hpsd-008" is the seed's doc bug: we match the intended "-hpsd-088" only
    with pytest.raises(DpsError) as caught:
        await allocator.allocate(request(sample_url, reg_id))
    assert caught.value.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert caught.value.message == "Custom allocation failed with status code: 400"
    assert caught.value.info["webhookResponse"] == "Unrecognized device registration."


async def test_no_toasters_hub_linked_is_400207(allocator: WebhookAllocator,
                                                sample_url: str) -> None:
    with pytest.raises(DpsError) as caught:
        await allocator.allocate(request(sample_url, "breakroom499-contoso-tstrsd-007",
                                         [HEATPUMPS]))
    assert caught.value.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert caught.value.info["webhookResponse"] == "No toasters hub found for the enrollment."


async def test_custom_matches_and_put() -> None:
    async with serve(sample.make_app("127.0.0.2", "127.0.0.3")) as base, \
            aiohttp.ClientSession() as http:
        body = {"deviceRuntimeContext": {"registrationId": "x-contoso-hpsd-088"},
                "linkedHubs": ["127.0.0.2", "127.0.0.3"]}
        async with http.put(f"{base}/anything", json=body) as resp:
            assert resp.status == 200
            assert (await resp.json())["iotHubHostName"] == "127.0.0.3"
        async with http.post(base, json={"linkedHubs": []}) as resp:
            assert resp.status == 400
            assert await resp.text() == "Registration ID not provided for the device."
        async with http.post(base, json={"deviceRuntimeContext": {"registrationId": "a"}}) as resp:
            assert await resp.text() == "No hub group defined for the enrollment."
