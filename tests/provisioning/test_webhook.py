"""The custom allocation webhook client against real loopback servers: the exact §6 body, each
error mapping, retries with an injected sleep, timeouts, HTTPS with a trust root, no secrets."""

from __future__ import annotations

import json
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from opendps.pki import create_ca, create_server_cert
from opendps.protocol.errors import DpsError, ErrorCode
from opendps.provisioning.webhook import (
    AllocationRequest,
    RetryPolicy,
    WebhookAllocator,
    is_retryable_status,
    mask_url,
)

from .conftest import Recorder, serve

SECRET = "c2VjcmV0LWZ1bmN0aW9uLWtleQ=="
PRIMARY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SECONDARY = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
TOASTERS = "contoso-toasters-hub-1098.azure-devices.net"
HEATPUMPS = "contoso-heatpumps-hub-1098.azure-devices.net"
PAYLOAD = {"MyDeviceFirmwareVersion": "12.0.2.5", "MyDeviceProvisioningVersion": "1.0.0.0"}


def group_doc(url: str) -> dict[str, Any]:
    """An enrollment group as the store holds it: keys included."""
    return {
        "enrollmentGroupId": "contoso-custom-allocated-devices",
        "attestation": {"type": "symmetricKey",
                        "symmetricKey": {"primaryKey": PRIMARY, "secondaryKey": SECONDARY}},
        "capabilities": {"iotEdge": False},
        "etag": '"e8002126-0000-0100-0000-5f6b2a570000"',
        "provisioningStatus": "enabled",
        "reprovisionPolicy": {"updateHubAssignment": True, "migrateDeviceData": True},
        "createdDateTimeUtc": "2020-09-23T10:58:31.6228600Z",
        "lastUpdatedDateTimeUtc": "2020-09-23T10:58:31.6228600Z",
        "allocationPolicy": "custom",
        "iotHubs": [TOASTERS, HEATPUMPS],
        "customAllocationDefinition": {"webhookUrl": url, "apiVersion": "2021-10-01"},
    }


def group_request(url: str, **overrides: Any) -> AllocationRequest:
    fields: dict[str, Any] = {
        "webhook_url": url, "enrollment_kind": "group", "enrollment": group_doc(url),
        "registration_id": "breakroom499-contoso-tstrsd-007",
        "attestation": ("symmetricKey", {}), "payload": PAYLOAD,
        "linked_hubs": [TOASTERS, HEATPUMPS],
    }
    fields.update(overrides)
    return AllocationRequest(**fields)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def allocator(sleeps: Sleeps):  # type: ignore[no-untyped-def]
    async with WebhookAllocator(sleep=sleeps, timeout=5) as alloc:
        yield alloc


def hook_url(base: str) -> str:
    return f"{base}/api/HttpTrigger1?code={SECRET}"


async def fails(alloc: WebhookAllocator, req: AllocationRequest) -> DpsError:
    with pytest.raises(DpsError) as caught:
        await alloc.allocate(req)
    return caught.value


# -- the request --------------------------------------------------------------------------------
async def test_group_request_body_is_exactly_section_6(
        allocator: WebhookAllocator, recorder: Recorder, webhook: str) -> None:
    recorder.then(json={"iotHubHostName": TOASTERS})
    url = hook_url(webhook)
    result = await allocator.allocate(group_request(url))
    assert result.hub == TOASTERS and result.initial_twin is None and result.payload is None

    [(method, path, headers, raw)] = recorder.requests
    assert method == "POST"
    assert path == f"/api/HttpTrigger1?code={SECRET}"  # the real URL is called
    assert headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    expected_group = group_doc(url)
    expected_group["attestation"] = {"type": "symmetricKey"}
    expected_group["customAllocationDefinition"] = {
        "webhookUrl": f"{webhook}/api/HttpTrigger1?*****", "apiVersion": "2021-10-01"}
    assert body == {
        "enrollmentGroup": expected_group,
        "deviceRuntimeContext": {"registrationId": "breakroom499-contoso-tstrsd-007",
                                 "symmetricKey": {}, "payload": PAYLOAD},
        "linkedHubs": [TOASTERS, HEATPUMPS],
    }
    assert list(body) == ["enrollmentGroup", "deviceRuntimeContext", "linkedHubs"]
    assert list(body["deviceRuntimeContext"]) == ["registrationId", "symmetricKey", "payload"]
    for secret in (SECRET, PRIMARY, SECONDARY):
        assert secret.encode() not in raw


async def test_individual_request_body_with_reprovisioning_fields(
        allocator: WebhookAllocator, recorder: Recorder, webhook: str) -> None:
    recorder.then(json={"iotHubHostName": HEATPUMPS})
    url = hook_url(webhook)
    enrollment = {
        "registrationId": "mainbuilding167-contoso-hpsd-088",
        "deviceId": "heatpump-1",
        "attestation": {"type": "symmetricKey",
                        "symmetricKey": {"primaryKey": PRIMARY, "secondaryKey": SECONDARY}},
        "provisioningStatus": "enabled",
        "allocationPolicy": "custom",
        "customAllocationDefinition": {"webhookUrl": url, "apiVersion": "2021-10-01"},
    }
    req = AllocationRequest(
        webhook_url=url, enrollment_kind="individual", enrollment=enrollment,
        registration_id="mainbuilding167-contoso-hpsd-088", attestation=("symmetricKey", {}),
        payload=None, current_hub=TOASTERS, current_device_id="heatpump-1",
        linked_hubs=[HEATPUMPS])
    assert (await allocator.allocate(req)).hub == HEATPUMPS
    body = json.loads(recorder.requests[0][3])
    assert body == {
        "individualEnrollment": {
            "registrationId": "mainbuilding167-contoso-hpsd-088",
            "deviceId": "heatpump-1",
            "attestation": {"type": "symmetricKey"},
            "provisioningStatus": "enabled",
            "allocationPolicy": "custom",
            "customAllocationDefinition": {"webhookUrl": f"{webhook}/api/HttpTrigger1?*****",
                                           "apiVersion": "2021-10-01"},
        },
        "deviceRuntimeContext": {
            "registrationId": "mainbuilding167-contoso-hpsd-088",
            "currentIotHubHostName": TOASTERS,
            "currentDeviceId": "heatpump-1",
            "symmetricKey": {},
            "payload": None,
        },
        "linkedHubs": [HEATPUMPS],
    }
    assert enrollment["attestation"]["symmetricKey"]["primaryKey"] == PRIMARY  # not mutated


async def test_x509_runtime_detail_passes_and_symmetric_detail_never_does(
        allocator: WebhookAllocator, recorder: Recorder, webhook: str) -> None:
    recorder.then(json={"iotHubHostName": TOASTERS})
    detail = {"clientCertificateInfo": {"subjectName": "CN=dev-1", "sha1Thumbprint": "AB"}}
    await allocator.allocate(group_request(hook_url(webhook), attestation=("x509", detail),
                                           current_hub=TOASTERS))
    context = json.loads(recorder.requests[0][3])["deviceRuntimeContext"]
    assert context == {"registrationId": "breakroom499-contoso-tstrsd-007",
                       "currentIotHubHostName": TOASTERS, "x509": detail, "payload": PAYLOAD}

    recorder.then(json={"iotHubHostName": TOASTERS})
    await allocator.allocate(group_request(hook_url(webhook),
                                           attestation=("symmetricKey", {"key": PRIMARY})))
    assert json.loads(recorder.requests[1][3])["deviceRuntimeContext"]["symmetricKey"] == {}


def test_request_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError):
        group_request("http://x", enrollment_kind="groups")
    with pytest.raises(ValueError):
        group_request("http://x", attestation=("sas", {}))


# -- success ------------------------------------------------------------------------------------
async def test_success_with_initial_twin_and_payload(
        allocator: WebhookAllocator, recorder: Recorder, webhook: str) -> None:
    # the docs' table spells iotHubHostname; the hub comes back as linkedHubs spells it
    recorder.then(json={
        "iotHubHostname": TOASTERS.upper(),
        "initialTwin": {"tags": {"deviceType": "toaster"},
                        "properties": {"desired": {"state": "ready"}}},
        "payload": {"hello": ["device", 1]},
    })
    result = await allocator.allocate(group_request(hook_url(webhook)))
    assert result.hub == TOASTERS
    assert result.initial_twin == {"tags": {"deviceType": "toaster"},
                                   "properties": {"desired": {"state": "ready"}}}
    assert result.payload == {"hello": ["device", 1]}


async def test_initial_twin_with_tags_only_is_normalized(
        allocator: WebhookAllocator, recorder: Recorder, webhook: str) -> None:
    recorder.then(json={"iotHubHostName": TOASTERS, "initialTwin": {"tags": {"a": 1}}})
    result = await allocator.allocate(group_request(hook_url(webhook)))
    assert result.initial_twin == {"tags": {"a": 1}, "properties": {"desired": {}}}


# -- error mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", [{"iotHubHostName": None}, {"iotHubHostName": ""},
                                    {"iotHubHostName": "  "}, {}])
async def test_no_hub_is_400208(allocator: WebhookAllocator, recorder: Recorder, webhook: str,
                                answer: dict[str, Any]) -> None:
    recorder.then(json=answer)
    err = await fails(allocator, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_NO_HUB == 400208


async def test_webhook_401_is_400209(allocator: WebhookAllocator, recorder: Recorder,
                                     webhook: str, sleeps: Sleeps) -> None:
    recorder.then(401, text="Unauthorized")
    err = await fails(allocator, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_UNAUTHORIZED == 400209
    assert err.message == "Custom allocation failed with status code: 401"
    assert sleeps.delays == [] and len(recorder.requests) == 1


async def test_unlinked_hub_is_400209(allocator: WebhookAllocator, recorder: Recorder,
                                      webhook: str) -> None:
    recorder.then(json={"iotHubHostName": "rogue-hub.azure-devices.net"})
    err = await fails(allocator, group_request(hook_url(webhook), linked_hubs=[TOASTERS]))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_UNAUTHORIZED
    assert "rogue-hub.azure-devices.net" in err.message
    assert "not linked" in err.message


async def test_webhook_400_is_400207_with_its_status(
        allocator: WebhookAllocator, recorder: Recorder, webhook: str, sleeps: Sleeps) -> None:
    recorder.then(400, text="Unrecognized device registration." + "x" * 500)
    err = await fails(allocator, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED == 400207
    # Azure's device-visible text; the webhook's own words stay with the operator
    assert err.message == "Custom allocation failed with status code: 400"
    assert err.info["webhookStatus"] == "400"
    assert err.info["webhookResponse"].startswith("Unrecognized device registration.")
    assert len(err.info["webhookResponse"]) == 200
    assert sleeps.delays == []


async def test_webhook_404_is_400207(allocator: WebhookAllocator, recorder: Recorder,
                                     webhook: str) -> None:
    recorder.then(404, text="no such function")
    err = await fails(allocator, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert "404" in err.message and len(recorder.requests) == 1


@pytest.mark.parametrize("raw", [b"{not json", b"[\"a\"]", b"", b"\xff\xfe\x00"])
async def test_invalid_json_is_400207(allocator: WebhookAllocator, recorder: Recorder,
                                      webhook: str, raw: bytes) -> None:
    recorder.then(body=raw)
    err = await fails(allocator, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert "JSON" in err.message


@pytest.mark.parametrize("answer", [{"iotHubHostName": 7},
                                    {"iotHubHostName": TOASTERS, "initialTwin": []},
                                    {"iotHubHostName": TOASTERS, "initialTwin": {"tags": "x"}}])
async def test_ill_typed_answer_is_400207(allocator: WebhookAllocator, recorder: Recorder,
                                          webhook: str, answer: dict[str, Any]) -> None:
    recorder.then(json=answer)
    err = await fails(allocator, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED


async def test_oversized_answer_is_400207(sleeps: Sleeps, recorder: Recorder,
                                          webhook: str) -> None:
    recorder.then(json={"iotHubHostName": TOASTERS, "payload": "x" * 5000})
    async with WebhookAllocator(sleep=sleeps, max_response_bytes=1000) as alloc:
        err = await fails(alloc, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED and "larger" in err.message


@pytest.mark.parametrize("url", [f"ftp://127.0.0.1/x?code={SECRET}",
                                 f"http://[::1/x?code={SECRET}", f"no-scheme?code={SECRET}"])
async def test_unusable_url_is_400207(allocator: WebhookAllocator, url: str) -> None:
    err = await fails(allocator, group_request(url))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert SECRET not in json.dumps([err.message, err.info])


# -- retries ------------------------------------------------------------------------------------
def test_default_retry_policy_is_azures() -> None:
    assert RetryPolicy().delays() == [1, 10, 19, 28, 37, 46, 55, 64, 73, 82]
    assert [s for s in (400, 401, 404, 428, 429, 500, 503, 599) if is_retryable_status(s)] == [
        429, 500, 503, 599]


async def test_503_is_retried_ten_times_then_400207(
        allocator: WebhookAllocator, recorder: Recorder, webhook: str, sleeps: Sleeps) -> None:
    recorder.then(503, text="busy")
    err = await fails(allocator, group_request(hook_url(webhook)))
    assert sleeps.delays == [1, 10, 19, 28, 37, 46, 55, 64, 73, 82]
    assert len(recorder.requests) == 11
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert err.message == ("Custom allocation failed with status code: 503 "
                           "(gave up after 11 attempts)")


async def test_429_then_success(allocator: WebhookAllocator, recorder: Recorder, webhook: str,
                                sleeps: Sleeps) -> None:
    recorder.then(429, text="slow down").then(500).then(json={"iotHubHostName": TOASTERS})
    assert (await allocator.allocate(group_request(hook_url(webhook)))).hub == TOASTERS
    assert sleeps.delays == [1, 10]
    assert len(recorder.requests) == 3
    assert recorder.requests[0][3] == recorder.requests[2][3]  # the same body every time


async def test_429_with_a_tiny_real_policy(recorder: Recorder, webhook: str) -> None:
    recorder.then(429)
    policy = RetryPolicy(retries=3, initial=0.001, increment=0.002)
    async with WebhookAllocator(retry=policy) as alloc:
        err = await fails(alloc, group_request(hook_url(webhook)))
    assert len(recorder.requests) == 4
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert "429" in err.message and "4 attempts" in err.message


async def test_timeout_is_retried_then_400207(recorder: Recorder, webhook: str,
                                              sleeps: Sleeps) -> None:
    recorder.then(json={"iotHubHostName": TOASTERS}, delay=2)
    async with WebhookAllocator(timeout=0.2, retry=RetryPolicy(retries=1),
                                sleep=sleeps) as alloc:
        err = await fails(alloc, group_request(hook_url(webhook)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert err.message == ("Custom allocation failed: the webhook did not answer within 0.2 s "
                           "(gave up after 2 attempts)")
    assert sleeps.delays == [1]


async def test_connection_refused_is_retried(sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with WebhookAllocator(retry=RetryPolicy(retries=2), sleep=sleeps) as alloc:
        err = await fails(alloc, group_request(f"http://127.0.0.1:{port}/x?code={SECRET}"))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    assert "could not be reached" in err.message
    assert sleeps.delays == [1, 10]
    assert SECRET not in json.dumps([err.message, err.info])


# -- HTTPS ----------------------------------------------------------------------------------------
@pytest.fixture
async def https_webhook(recorder: Recorder, tmp_path: Path):  # type: ignore[no-untyped-def]
    ca_pem, ca_key = create_ca("webhook test CA")
    cert_pem, key_pem = create_server_cert(ca_pem, ca_key, ["127.0.0.1"])
    (tmp_path / "ca.pem").write_text(ca_pem)
    (tmp_path / "server.pem").write_text(cert_pem)
    (tmp_path / "server.key").write_text(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    async with serve(recorder.app(), context) as base:
        yield base, tmp_path / "ca.pem"


async def test_https_with_the_trust_root(https_webhook: tuple[str, Path], recorder: Recorder,
                                         sleeps: Sleeps) -> None:
    base, ca_file = https_webhook
    recorder.then(json={"iotHubHostName": TOASTERS})
    async with WebhookAllocator(ca_file=ca_file, sleep=sleeps) as alloc:
        assert (await alloc.allocate(group_request(hook_url(base)))).hub == TOASTERS


async def test_https_untrusted_fails_without_retrying(
        https_webhook: tuple[str, Path], recorder: Recorder, sleeps: Sleeps) -> None:
    base, _ = https_webhook
    recorder.then(json={"iotHubHostName": TOASTERS})
    async with WebhookAllocator(sleep=sleeps) as alloc:  # system trust: our CA is unknown
        err = await fails(alloc, group_request(hook_url(base)))
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED and "TLS" in err.message
    assert sleeps.delays == [] and recorder.requests == []


# -- sessions and secrets -----------------------------------------------------------------------
async def test_borrowed_session_is_left_open_and_factory_session_is_closed(
        recorder: Recorder, webhook: str) -> None:
    recorder.then(json={"iotHubHostName": TOASTERS})
    async with aiohttp.ClientSession() as borrowed:
        alloc = WebhookAllocator(borrowed)
        await alloc.allocate(group_request(hook_url(webhook)))
        await alloc.close()
        assert not borrowed.closed

    made: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        made.append(aiohttp.ClientSession())
        return made[-1]

    alloc = WebhookAllocator(factory)
    await alloc.allocate(group_request(hook_url(webhook)))
    await alloc.allocate(group_request(hook_url(webhook)))
    await alloc.close()
    assert len(made) == 1 and made[0].closed


async def test_no_secret_in_logs_or_repr(sleeps: Sleeps, recorder: Recorder, webhook: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder.then(503).then(400, text="nope")
    req = group_request(hook_url(webhook))
    async with WebhookAllocator(sleep=sleeps) as alloc:
        err = await fails(alloc, req)
    assert err.code == ErrorCode.CUSTOM_ALLOCATION_FAILED
    # everything but the test webhook's own access log (the server side sees the real URL)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "HttpTrigger1?*****" in ours
    for secret in (SECRET, PRIMARY, SECONDARY):
        assert secret not in ours
        assert secret not in repr(req)
        assert secret not in json.dumps([err.message, err.info])


@pytest.mark.parametrize(("url", "masked"), [
    ("https://f.azurewebsites.net/api/T?code=abc==", "https://f.azurewebsites.net/api/T?*****"),
    ("https://f.azurewebsites.net/api/T", "https://f.azurewebsites.net/api/T"),
    ("http://user:pw@h:8080/p?a=1&code=2#frag", "http://user:*****@h:8080/p?*****"),
    ("http://[::1/p?code=x", "http://[::1/p?*****"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
