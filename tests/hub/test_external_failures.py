"""How ``ExternalHub`` fails: refused credentials, a stopped hub, 5xx, racing writes, silence.

A real opendps covers the credentials and the stopped hub; a scripted HTTPS hub gives the
answers a healthy opendps never gives. Every failure is ``DpsError(HUB_UNAVAILABLE)`` (or
``BAD_REQUEST`` for a 400) and no message or log line holds the key or the token.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web

from integration.servers import ServerProcess, start_server
from opendps.hub import external_http
from opendps.hub.external import ExternalHub
from opendps.protocol import connstr, sas
from opendps.protocol.errors import DpsError, ErrorCode
from opendps.provisioning.hub_port import DeviceSpec

from .fake_hub import KEY, SLOW, FakeHub, fake_hub
from .registry_raw import hub_connection_string

WRONG_KEY = "d3Jvbmcga2V5IGZvciB0aGUgZXh0ZXJuYWwgaHViIHRlc3Q="
DEVICE = {"deviceId": "d1", "generationId": "g1", "etag": '"e1"', "status": "enabled",
          "connectionState": "Disconnected", "authentication": {"type": "sas"}}


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeHub]:
    async with fake_hub(tmp_path) as hub:
        yield hub


@pytest.fixture
async def client(fake: FakeHub) -> AsyncIterator[ExternalHub]:
    hub = ExternalHub(fake.connection_string, ca_file=fake.ca, port=fake.port, timeout=2.0)
    yield hub
    await hub.close()


# -- against a real opendps ------------------------------------------------------------------
async def test_wrong_key_is_hub_unavailable_without_secrets(
        opendps_server: ServerProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    real = connstr.parse(hub_connection_string(opendps_server))
    wrong = str(connstr.ConnectionString(real.host_name, real.key_name, WRONG_KEY))
    hub = ExternalHub(wrong, ca_file=opendps_server.info["caCertificate"])
    started = time.monotonic()
    try:
        with pytest.raises(DpsError) as caught:
            await hub.create_or_update_device(DeviceSpec("wrong-key", WRONG_KEY, WRONG_KEY))
    finally:
        await hub.close()
    assert time.monotonic() - started < 2.0  # refused credentials are not retried
    err = caught.value
    assert err.code is ErrorCode.HUB_UNAVAILABLE and err.status == 503
    assert err.message.startswith(f"IoT hub {real.host_name} refused the registry request: 401")
    for secret in (WRONG_KEY, real.key):
        assert secret not in err.message and secret not in caplog.text


async def test_stopped_hub_fails_after_retries_in_bounded_time(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    hub = ExternalHub(hub_connection_string(server), ca_file=server.info["caCertificate"],
                      timeout=3.0)
    try:
        assert not await hub.device_exists("anyone")  # up: a plain 404
        server.stop()
        started = time.monotonic()
        with pytest.raises(DpsError) as caught:
            await hub.device_exists("anyone")
        elapsed = time.monotonic() - started
    finally:
        await hub.close()
        server.stop()
    assert caught.value.code is ErrorCode.HUB_UNAVAILABLE
    assert f"IoT hub {server.host} could not be reached" in caught.value.message
    assert "after 2 retries" in caught.value.message
    assert sum(external_http.RETRY_DELAYS) <= elapsed < 5.0


# -- against a scripted hub ----------------------------------------------------------------
async def test_requests_carry_service_sas_and_headers(fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("GET", "/devices/d1")] = [(200, DEVICE)]
    fake.script[("PUT", "/devices/d1")] = [(200, DEVICE)]
    fake.script[("PUT", "/devices/new")] = [(200, DEVICE)]
    await client.create_or_update_device(DeviceSpec("d1", KEY, KEY, iot_edge=True))
    await client.create_or_update_device(DeviceSpec("new", KEY, KEY))
    _, put, _, put_new = fake.seen
    for seen in fake.seen:
        assert seen.query == {"api-version": "2021-04-12"}
        assert seen.headers["Accept"] == "application/json"
        token = sas.parse(seen.headers["Authorization"])
        sas.check_claims(token, "127.0.0.1", time.time())
        assert token.key_name == "iothubowner" and sas.signature_matches(token, [KEY])
        assert 3500 < token.expiry - time.time() <= 3600
    assert put.headers["Content-Type"] == "application/json; charset=utf-8"
    assert put.headers["If-Match"] == "*" and "If-Match" not in put_new.headers
    # what the hub had that DPS does not own is sent back; read-only fields are not
    assert put.body == {"deviceId": "d1", "generationId": "g1", "etag": '"e1"',
                        "status": "enabled", "capabilities": {"iotEdge": True},
                        "authentication": {"type": "sas", "symmetricKey": {
                            "primaryKey": KEY, "secondaryKey": KEY}}}
    assert put_new.body["status"] == "enabled"
    assert len({s.headers["Authorization"] for s in fake.seen}) == 1  # one token, reused


async def test_token_is_renewed_before_it_expires(
        fake: FakeHub, client: ExternalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    await client.device_exists("a")
    later = time.time() + external_http.TOKEN_TTL - external_http.TOKEN_MARGIN + 1
    monkeypatch.setattr(external_http, "time", SimpleNamespace(time=lambda: later))
    await client.device_exists("a")
    first, second = (sas.parse(s.headers["Authorization"]) for s in fake.seen)
    assert second.expiry > first.expiry + 3000


async def test_5xx_is_retried_twice(fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("GET", "/devices/d1")] = [(503, None), (500, None), (200, DEVICE)]
    assert await client.device_exists("d1")
    assert fake.calls("GET", "/devices/d1") == 3


async def test_persistent_5xx_is_hub_unavailable(fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("GET", "/twins/d1")] = [(503, {"Message": "ErrorCode:ServerBusy;try later"})]
    with pytest.raises(DpsError) as caught:
        await client.get_twin("d1")
    assert caught.value.code is ErrorCode.HUB_UNAVAILABLE
    assert "503 ServerBusy: try later (after 2 retries)" in caught.value.message
    assert fake.calls("GET", "/twins/d1") == 3


async def test_403_is_not_retried(fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("DELETE", "/devices/d1")] = [(403, {"Message": "ErrorCode:Forbidden;no"})]
    with pytest.raises(DpsError) as caught:
        await client.delete_device("d1")
    assert caught.value.code is ErrorCode.HUB_UNAVAILABLE
    assert caught.value.message == (
        "IoT hub 127.0.0.1 refused the registry request: 403 Forbidden: no")
    assert fake.calls("DELETE", "/devices/d1") == 1


async def test_error_text_echoing_the_token_is_scrubbed(
        fake: FakeHub, client: ExternalHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(request: web.Request) -> dict:
        return {"Message": f"ErrorCode:Bad;you sent {request.headers['Authorization']} / {KEY}"}

    fake.script[("GET", "/devices/d1")] = [(500, echo)]
    fake.script[("PUT", "/twins/d1")] = [(401, echo)]
    for call in (client.device_exists("d1"), client.apply_initial_twin("d1", {}, {})):
        with pytest.raises(DpsError) as caught:
            await call
        token = fake.seen[-1].headers["Authorization"]
        sig = urllib.parse.parse_qs(token.split(" ", 1)[1])["sig"][0]
        for secret in (token, KEY, sig, urllib.parse.quote(sig, safe="")):
            assert secret not in caught.value.message and secret not in caplog.text


async def test_racing_write_412_is_retried_once(fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("GET", "/devices/d1")] = [(200, DEVICE)]
    fake.script[("PUT", "/devices/d1")] = [(412, None), (200, DEVICE)]
    await client.create_or_update_device(DeviceSpec("d1", KEY, KEY))
    assert fake.calls("GET", "/devices/d1") == 2 and fake.calls("PUT", "/devices/d1") == 2


async def test_created_meanwhile_409_is_retried_as_an_update(
        fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("GET", "/devices/d1")] = [(404, None), (200, DEVICE)]
    fake.script[("PUT", "/devices/d1")] = [(409, None), (200, DEVICE)]
    await client.create_or_update_device(DeviceSpec("d1", KEY, KEY))
    first, second = (s for s in fake.seen if s.method == "PUT")
    assert "If-Match" not in first.headers and second.headers["If-Match"] == "*"


async def test_412_twice_fails(fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("GET", "/devices/d1")] = [(200, DEVICE)]
    fake.script[("PUT", "/devices/d1")] = [(412, None)]
    fake.script[("PUT", "/twins/d1")] = [(412, None)]
    with pytest.raises(DpsError, match="412"):
        await client.create_or_update_device(DeviceSpec("d1", KEY, KEY))
    with pytest.raises(DpsError, match="412"):
        await client.apply_initial_twin("d1", {}, {"a": 1})
    assert fake.calls("PUT", "/devices/d1") == 2 and fake.calls("PUT", "/twins/d1") == 2


async def test_400_is_bad_request(fake: FakeHub, client: ExternalHub) -> None:
    fake.script[("PUT", "/devices/bad")] = [
        (400, {"Message": "ErrorCode:ArgumentInvalid;bad thumbprint"})]
    with pytest.raises(DpsError) as caught:
        await client.create_or_update_device(DeviceSpec("bad", auth_type="selfSigned"))
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert "400 ArgumentInvalid: bad thumbprint" in caught.value.message


async def test_initial_twin_for_a_vanished_device(fake: FakeHub, client: ExternalHub) -> None:
    with pytest.raises(DpsError, match="has no device gone"):
        await client.apply_initial_twin("gone", {"a": 1}, {})


async def test_silence_times_out_without_retry(fake: FakeHub) -> None:
    fake.script[("GET", "/devices/d1")] = [(SLOW, None)]
    hub = ExternalHub(fake.connection_string, ca_file=fake.ca, port=fake.port, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(DpsError) as caught:
            await hub.device_exists("d1")
    finally:
        await hub.close()
    assert time.monotonic() - started < 2.0
    assert caught.value.code is ErrorCode.HUB_UNAVAILABLE
    assert "did not answer GET /devices/d1 within 0.5 s" in caught.value.message
    assert fake.calls("GET", "/devices/d1") == 1


async def test_untrusted_certificate_is_hub_unavailable(fake: FakeHub) -> None:
    hub = ExternalHub(fake.connection_string, port=fake.port)  # system trust store only
    try:
        with pytest.raises(DpsError) as caught:
            await hub.device_exists("d1")
    finally:
        await hub.close()
    assert caught.value.code is ErrorCode.HUB_UNAVAILABLE
    assert "TLS handshake" in caught.value.message and not fake.seen
