"""The DPS service client against an in-process aiohttp server: exact requests, paging, errors."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opendps.client.service import DpsServiceClient, ServiceError
from opendps.protocol import sas

KEY = "dGhpcyBpcyBhIHRlc3Qga2V5IGZvciBvcGVuZHBzIQ=="
HOST = "my-dps.example.net"
CS = f"HostName={HOST};SharedAccessKeyName=provisioningserviceowner;SharedAccessKey={KEY}"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeDps:
    server: TestServer
    seen: list[Seen] = field(default_factory=list)
    # (method, path) -> function(Seen) -> web.Response
    routes: dict[tuple[str, str], Callable[[Seen], web.Response]] = field(default_factory=dict)

    def client(self) -> DpsServiceClient:
        return DpsServiceClient.from_connection_string(CS, base_url=str(self.server.make_url("")))


@pytest.fixture
async def fake() -> AsyncIterator[FakeDps]:
    state: dict[str, FakeDps] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        text = await request.text()
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers),
                    json.loads(text) if text else None)
        fake = state["fake"]
        fake.seen.append(seen)
        route = fake.routes.get((request.method, request.path))
        if route is None:
            return web.json_response({"errorCode": 404000, "trackingId": "t-1",
                                      "message": "no such route"}, status=404)
        return route(seen)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app)
    await server.start_server()
    state["fake"] = FakeDps(server)
    yield state["fake"]
    await server.close()


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Callable:
    return lambda seen: web.json_response(body, status=status, headers=headers)


async def test_get_enrollment_sends_api_version_and_service_sas(fake: FakeDps) -> None:
    fake.routes[("GET", "/enrollments/dev-1")] = ok({"registrationId": "dev-1"})
    async with fake.client() as client:
        assert await client.get_enrollment("dev-1") == {"registrationId": "dev-1"}
    seen = fake.seen[0]
    assert seen.query == {"api-version": "2021-10-01"}
    token = sas.parse(seen.headers["Authorization"])
    assert token.resource == HOST
    assert token.key_name == "provisioningserviceowner"
    assert token.expiry > time.time() + 600
    assert sas.signature_matches(token, [KEY])
    assert KEY not in seen.headers["Authorization"]


@pytest.mark.parametrize(("given", "sent"), [
    (None, None), ("abc", '"abc"'), ('"abc"', '"abc"'), ("*", "*"),
])
async def test_if_match_is_quoted_once(fake: FakeDps, given: str | None,
                                       sent: str | None) -> None:
    fake.routes[("PUT", "/enrollmentGroups/g1")] = ok({"enrollmentGroupId": "g1"})
    group = {"enrollmentGroupId": "g1", "attestation": {"type": "symmetricKey"}}
    async with fake.client() as client:
        await client.create_or_update_enrollment_group(group, if_match=given)
    seen = fake.seen[0]
    assert seen.headers.get("If-Match") == sent
    assert seen.body == group
    assert seen.headers["Content-Type"].startswith("application/json")


async def test_delete_returns_none_on_204(fake: FakeDps) -> None:
    fake.routes[("DELETE", "/enrollments/dev-1")] = lambda seen: web.Response(status=204)
    async with fake.client() as client:
        assert await client.delete_enrollment("dev-1", if_match="e1") is None
    assert fake.seen[0].headers["If-Match"] == '"e1"'


async def test_query_follows_continuation_until_absent(fake: FakeDps) -> None:
    pages = {None: ([{"registrationId": "a"}, {"registrationId": "b"}], "c1"),
             "c1": ([{"registrationId": "c"}], "c2"),
             "c2": ([{"registrationId": "d"}], None)}

    def page(seen: Seen) -> web.Response:
        items, nxt = pages[seen.headers.get("x-ms-continuation")]
        headers = {"x-ms-item-type": "Enrollment"}
        if nxt:
            headers["x-ms-continuation"] = nxt
        return web.json_response(items, headers=headers)

    fake.routes[("POST", "/enrollments/query")] = page
    async with fake.client() as client:
        items = await client.query_enrollments(page_size=2)
    assert [i["registrationId"] for i in items] == ["a", "b", "c", "d"]
    assert len(fake.seen) == 3
    assert [s.headers.get("x-ms-continuation") for s in fake.seen] == [None, "c1", "c2"]
    assert all(s.headers["x-ms-max-item-count"] == "2" for s in fake.seen)
    assert fake.seen[0].body == {"query": "SELECT * FROM enrollments"}


async def test_registration_query_by_group(fake: FakeDps) -> None:
    fake.routes[("POST", "/registrations/grp-1/query")] = ok([{"registrationId": "d1"}])
    async with fake.client() as client:
        assert await client.query_registrations("grp-1") == [{"registrationId": "d1"}]
    assert fake.seen[0].query == {"api-version": "2021-10-01"}


async def test_attestation_bulk_and_registration_calls(fake: FakeDps) -> None:
    fake.routes[("POST", "/enrollments/dev-1/attestationmechanism")] = ok(
        {"type": "symmetricKey", "symmetricKey": {"primaryKey": "k"}})
    fake.routes[("POST", "/enrollmentGroups")] = ok({"isSuccessful": True, "errors": []})
    fake.routes[("GET", "/registrations/dev-1")] = ok({"registrationId": "dev-1"})
    fake.routes[("DELETE", "/registrations/dev-1")] = lambda s: web.Response(status=204)
    async with fake.client() as client:
        att = await client.get_enrollment_attestation("dev-1")
        bulk = await client.bulk_enrollment_groups([{"enrollmentGroupId": "g"}], "create")
        reg = await client.get_registration("dev-1")
        await client.delete_registration("dev-1")
    assert att["symmetricKey"]["primaryKey"] == "k"
    assert bulk["isSuccessful"] is True
    assert reg["registrationId"] == "dev-1"
    assert fake.seen[1].body == {"enrollmentGroups": [{"enrollmentGroupId": "g"}],
                                 "mode": "create"}
    assert "If-Match" not in fake.seen[3].headers


async def test_dps_error_body_becomes_service_error(fake: FakeDps) -> None:
    fake.routes[("GET", "/enrollments/nope")] = ok(
        {"errorCode": 404203, "trackingId": "trk-9", "message": "Enrollment not found",
         "timestampUtc": "2024-01-01T00:00:00.0000000Z"}, status=404)
    async with fake.client() as client:
        with pytest.raises(ServiceError) as info:
            await client.get_enrollment("nope")
    err = info.value
    assert (err.status, err.error_code, err.message, err.tracking_id) == (
        404, 404203, "Enrollment not found", "trk-9")
    assert str(err) == "404203: Enrollment not found"


async def test_precondition_failed_and_plain_text_errors(fake: FakeDps) -> None:
    fake.routes[("PUT", "/enrollments/dev-1")] = ok(
        {"errorCode": 412002, "trackingId": "t", "message": "etag mismatch"}, status=412)
    fake.routes[("GET", "/enrollments/dev-1")] = lambda s: web.Response(
        status=500, text="upstream exploded", headers={"x-ms-error-code": "500001"})
    async with fake.client() as client:
        with pytest.raises(ServiceError) as first:
            await client.create_or_update_enrollment({"registrationId": "dev-1"}, if_match="x")
        with pytest.raises(ServiceError) as second:
            await client.get_enrollment("dev-1")
    assert (first.value.status, first.value.error_code) == (412, 412002)
    assert (second.value.status, second.value.error_code) == (500, 500001)
    assert second.value.message == "upstream exploded"


def test_https_by_default_with_port() -> None:
    client = DpsServiceClient.from_connection_string(CS, port=8443)
    assert client.base_url == f"https://{HOST}:8443"


# -- CA certificates (opendps admin API) -----------------------------------------------------------
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CA = {"name": "root-1", "etag": '"e1"',
      "properties": {"subject": "CN=root", "thumbprint": "AB", "isVerified": False,
                     "certificate": CA_PEM, "expiry": "2035-01-01T00:00:00Z",
                     "created": "c", "updated": "u"}}


async def test_ca_certificate_upload_list_get_delete(fake: FakeDps) -> None:
    fake.routes[("PUT", "/opendps/certificates/root-1")] = ok(CA, status=201)
    fake.routes[("GET", "/opendps/certificates")] = ok({"value": [CA]})
    fake.routes[("GET", "/opendps/certificates/root-1")] = ok(CA)
    fake.routes[("DELETE", "/opendps/certificates/root-1")] = lambda s: web.Response(status=204)
    async with fake.client() as client:
        assert await client.upload_ca_certificate("root-1", CA_PEM) == CA
        await client.upload_ca_certificate("root-1", CA_PEM, is_verified=True, if_match="e1")
        assert await client.list_ca_certificates() == [CA]
        assert await client.get_ca_certificate("root-1") == CA
        assert await client.delete_ca_certificate("root-1", if_match="e1") is None
    put, put_verified, listed, got, deleted = fake.seen
    assert (listed.path, got.path) == ("/opendps/certificates", "/opendps/certificates/root-1")
    assert put.body == {"certificate": CA_PEM, "isVerified": False}
    assert "If-Match" not in put.headers
    assert put_verified.body == {"certificate": CA_PEM, "isVerified": True}
    assert put_verified.headers["If-Match"] == '"e1"'
    assert deleted.headers["If-Match"] == '"e1"'
    assert all(s.query == {"api-version": "2021-10-01"} for s in fake.seen)
    token = sas.parse(listed.headers["Authorization"])
    assert (token.resource, token.key_name) == (HOST, "provisioningserviceowner")


async def test_ca_certificate_proof_of_possession_calls(fake: FakeDps) -> None:
    coded = {**CA, "etag": '"e2"', "properties": {**CA["properties"],
                                                  "verificationCode": "C0DE"}}
    verified = {**CA, "etag": '"e3"', "properties": {**CA["properties"], "isVerified": True}}
    fake.routes[("POST", "/opendps/certificates/root-1/generateVerificationCode")] = ok(coded)
    fake.routes[("POST", "/opendps/certificates/root-1/verify")] = ok(verified)
    async with fake.client() as client:
        got = await client.generate_verification_code("root-1", '"e1"')
        done = await client.verify_ca_certificate("root-1", got["etag"], "PROOF-PEM")
    assert got["properties"]["verificationCode"] == "C0DE"
    assert done["properties"]["isVerified"] is True
    generate, verify = fake.seen
    assert (generate.headers["If-Match"], generate.body) == ('"e1"', None)
    assert verify.headers["If-Match"] == '"e2"'
    assert verify.body == {"certificate": "PROOF-PEM"}


async def test_ca_certificate_empty_list_and_errors(fake: FakeDps) -> None:
    fake.routes[("GET", "/opendps/certificates")] = ok({"value": []})
    fake.routes[("POST", "/opendps/certificates/root-1/verify")] = ok(
        {"errorCode": 400004, "trackingId": "t",
         "message": "proof of possession failed: wrong CN"}, status=400)
    async with fake.client() as client:
        assert await client.list_ca_certificates() == []
        with pytest.raises(ServiceError) as info:
            await client.verify_ca_certificate("root-1", "e", "PEM")
    assert str(info.value) == "400004: proof of possession failed: wrong CN"


# -- linked hubs and deprovisioning (opendps admin API) --------------------------------------------
HUB = {"name": "hub-2.example.net", "builtIn": False, "allocationWeight": 3,
       "applyAllocationPolicy": True, "location": "westeurope",
       "connectionString": "HostName=hub-2.example.net;SharedAccessKeyName=o;"
                           "SharedAccessKey=****"}
HUB_CS = f"HostName=hub-2.example.net;SharedAccessKeyName=o;SharedAccessKey={KEY}"


async def test_linked_hub_list_put_and_unlink(fake: FakeDps) -> None:
    path = "/opendps/linkedHubs/hub-2.example.net"
    fake.routes[("GET", "/opendps/linkedHubs")] = ok({"value": [HUB]})
    fake.routes[("PUT", path)] = ok(HUB, status=201)
    fake.routes[("DELETE", path)] = lambda s: web.Response(status=204)
    async with fake.client() as client:
        assert await client.list_linked_hubs() == [HUB]
        assert await client.put_linked_hub("hub-2.example.net", connection_string=HUB_CS,
                                           built_in=False, allocation_weight=3,
                                           apply_allocation_policy=False,
                                           location="westeurope") == HUB
        await client.put_linked_hub("hub-2.example.net", built_in=True)
        assert await client.unlink_hub("hub-2.example.net") is None
    listed, full, partial, deleted = fake.seen
    assert (listed.method, listed.body) == ("GET", None)
    assert full.body == {"connectionString": HUB_CS, "builtIn": False, "allocationWeight": 3,
                         "applyAllocationPolicy": False, "location": "westeurope"}
    assert partial.body == {"builtIn": True}  # what is not given is not sent
    assert (deleted.method, deleted.path) == ("DELETE", path)
    assert all(s.query == {"api-version": "2021-10-01"} for s in fake.seen)
    assert all(sas.signature_matches(sas.parse(s.headers["Authorization"]), [KEY])
               for s in fake.seen)


async def test_linked_hub_list_of_nothing_and_probe_failure(fake: FakeDps) -> None:
    fake.routes[("GET", "/opendps/linkedHubs")] = ok({"value": []})
    fake.routes[("PUT", "/opendps/linkedHubs/hub-2.example.net")] = ok(
        {"errorCode": 400004, "trackingId": "t",
         "message": "the hub could not be used: IoT hub hub-2.example.net refused the "
                    "registry request: 401"}, status=400)
    async with fake.client() as client:
        assert await client.list_linked_hubs() == []
        with pytest.raises(ServiceError) as info:
            await client.put_linked_hub("hub-2.example.net", connection_string=HUB_CS)
    assert (info.value.status, info.value.error_code) == (400, 400004)
    assert "could not be used" in str(info.value)


async def test_deprovision_posts_the_disable_flag(fake: FakeDps) -> None:
    answer = {"registrationId": "dev:1", "enrollment": "disabled",
              "hubIdentity": "deleted from hub-1", "registrationRecord": "deleted"}
    fake.routes[("POST", "/opendps/registrations/dev:1/deprovision")] = ok(answer)
    fake.routes[("POST", "/opendps/registrations/dev-2/deprovision")] = ok(
        {"registrationId": "dev-2"})
    async with fake.client() as client:
        assert await client.deprovision("dev:1", disable=True) == answer
        await client.deprovision("dev-2")
    disabled, deleted = fake.seen
    assert disabled.body == {"disable": True}
    assert deleted.body == {"disable": False}
    assert disabled.query == {"api-version": "2021-10-01"}
