"""Our DPS device client against a scripted MQTT server over real loopback TLS."""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from opendps.client.device import ConnectRefused, DpsDeviceClient, ProvisioningError
from opendps.client.tls import client_ssl_context
from opendps.protocol import sas
from opendps.protocol.mqtt import Publish

from .fake_mqtt import FakeMqttServer, Reply, StartServer, TlsFiles

KEY = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
SCOPE = "0ne0000ABCD"
REG = "sn-007"
ASSIGNED = {"registrationId": REG, "assignedHub": "hub.local", "deviceId": REG,
            "status": "assigned", "substatus": "initialAssignment"}


def rid_of(packet: Publish) -> str:
    query = packet.topic.split("/?", 1)[1]
    return dict(urllib.parse.parse_qsl(query))["$rid"]


def dps_script(polls_before_assigned: int = 1, retry_after: int | None = 0,
               final: dict | None = None) -> Callable[[Publish], Reply]:
    """Register → 202 assigning; poll → 202 assigning (n times) → 200 final."""
    state = {"polls": 0}
    suffix = f"&retry-after={retry_after}" if retry_after is not None else ""

    def on_publish(packet: Publish) -> Reply:
        rid = rid_of(packet)
        if packet.topic.startswith("$dps/registrations/PUT/iotdps-register/"):
            body = {"operationId": "op-1", "status": "assigning"}
            return [(f"$dps/registrations/res/202/?$rid={rid}{suffix}",
                     json.dumps(body).encode(), 1)]
        state["polls"] += 1
        if state["polls"] <= polls_before_assigned:
            body = {"operationId": "op-1", "status": "assigning",
                    "registrationState": {"registrationId": REG, "status": "assigning"}}
            return [(f"$dps/registrations/res/202/?$rid={rid}{suffix}",
                     json.dumps(body).encode(), 1)]
        body = final or {"operationId": "op-1", "status": "assigned",
                         "registrationState": ASSIGNED}
        return [(f"$dps/registrations/res/200/?$rid={rid}", json.dumps(body).encode(), 1)]
    return on_publish


def make_client(server: FakeMqttServer, tls_files: TlsFiles, **kwargs: Any) -> DpsDeviceClient:
    return DpsDeviceClient("localhost", SCOPE, REG, KEY,
                           ssl_context=client_ssl_context(tls_files.ca), port=server.port,
                           timeout=5, connect_host="127.0.0.1", **kwargs)


async def test_register_and_poll_until_assigned(mqtt_server: StartServer,
                                                tls_files: TlsFiles) -> None:
    server = await mqtt_server(on_publish=dps_script(polls_before_assigned=2))
    result = await make_client(server, tls_files).register({"model": "x"})
    assert (result.status, result.assigned_hub, result.device_id, result.substatus) == (
        "assigned", "hub.local", REG, "initialAssignment")
    assert result.operation_id == "op-1"

    connect = server.connects[0]
    assert connect.client_id == REG
    assert connect.username == (f"{SCOPE}/registrations/{REG}/"
                                "api-version=2019-03-31&ClientVersion=opendps")
    token = sas.parse(connect.password.decode())
    assert token.sr_raw == urllib.parse.quote(f"{SCOPE}/registrations/{REG}", safe="")
    assert token.key_name is None
    assert sas.signature_matches(token, [KEY])

    subscribe = next(p for p in server.received if type(p).__name__ == "Subscribe")
    assert subscribe.topics == (("$dps/registrations/res/#", 1),)
    register = server.publishes("$dps/registrations/PUT/iotdps-register/?$rid=")
    assert len(register) == 1 and register[0].qos == 1
    assert json.loads(register[0].payload) == {"registrationId": REG, "payload": {"model": "x"}}
    polls = server.publishes("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=")
    assert len(polls) == 3
    assert all(p.topic.endswith("&operationId=op-1") and p.qos == 1 for p in polls)
    assert len({rid_of(p) for p in [*register, *polls]}) == 4  # a fresh $rid per request
    # every QoS 1 response was acknowledged by the client
    assert len(server.pubacks()) == 4


async def test_retry_after_is_honoured(mqtt_server: StartServer, tls_files: TlsFiles) -> None:
    server = await mqtt_server(on_publish=dps_script(polls_before_assigned=0, retry_after=1))
    start = time.monotonic()
    await make_client(server, tls_files).register()
    assert time.monotonic() - start >= 1.0


async def test_poll_immediately_skips_the_wait(mqtt_server: StartServer,
                                               tls_files: TlsFiles) -> None:
    server = await mqtt_server(on_publish=dps_script(polls_before_assigned=3, retry_after=5))
    start = time.monotonic()
    await make_client(server, tls_files, poll_immediately=True).register()
    assert time.monotonic() - start < 4


async def test_failed_registration_raises_with_the_result(mqtt_server: StartServer,
                                                          tls_files: TlsFiles) -> None:
    final = {"operationId": "op-1", "status": "failed",
             "registrationState": {"registrationId": REG, "status": "failed",
                                   "errorCode": 400209, "errorMessage": "hub unauthorized"}}
    server = await mqtt_server(on_publish=dps_script(polls_before_assigned=0, final=final))
    with pytest.raises(ProvisioningError) as info:
        await make_client(server, tls_files).register()
    assert info.value.error_code == 400209
    assert "hub unauthorized" in str(info.value)
    assert info.value.result is not None and info.value.result.status == "failed"


async def test_error_status_raises_the_dps_error(mqtt_server: StartServer,
                                                 tls_files: TlsFiles) -> None:
    def on_publish(packet: Publish) -> Reply:
        body = {"errorCode": 401002, "trackingId": "t", "message": "Unauthorized"}
        return [(f"$dps/registrations/res/401/?$rid={rid_of(packet)}",
                 json.dumps(body).encode(), 1)]

    server = await mqtt_server(on_publish=on_publish)
    with pytest.raises(ProvisioningError) as info:
        await make_client(server, tls_files).register()
    assert (info.value.status, info.value.error_code) == (401, 401002)
    assert str(info.value) == "401002: Unauthorized"
    assert KEY not in str(info.value)


async def test_throttled_register_is_resent(mqtt_server: StartServer, tls_files: TlsFiles) -> None:
    inner = dps_script(polls_before_assigned=0)
    seen = {"n": 0}

    def on_publish(packet: Publish) -> Reply:
        seen["n"] += 1
        if seen["n"] == 1:
            return [(f"$dps/registrations/res/429/?$rid={rid_of(packet)}&retry-after=0",
                     b'{"errorCode":429001,"message":"slow down"}', 1)]
        return inner(packet)

    server = await mqtt_server(on_publish=on_publish)
    result = await make_client(server, tls_files).register()
    assert result.status == "assigned"
    assert len(server.publishes("$dps/registrations/PUT/")) == 2


async def test_responses_for_other_rids_are_ignored(mqtt_server: StartServer,
                                                    tls_files: TlsFiles) -> None:
    inner = dps_script(polls_before_assigned=0)

    def on_publish(packet: Publish) -> Reply:
        stray = ("$dps/registrations/res/200/?$rid=someone-else",
                 b'{"operationId":"x","status":"failed"}', 1)
        return [stray, *inner(packet)]

    server = await mqtt_server(on_publish=on_publish)
    assert (await make_client(server, tls_files).register()).status == "assigned"


async def test_refused_connect(mqtt_server: StartServer, tls_files: TlsFiles) -> None:
    server = await mqtt_server(connack_code=5)
    with pytest.raises(ConnectRefused) as info:
        await make_client(server, tls_files).register()
    assert info.value.return_code == 5


async def test_no_answer_times_out_cleanly(mqtt_server: StartServer, tls_files: TlsFiles) -> None:
    server = await mqtt_server(on_publish=lambda packet: [])
    client = make_client(server, tls_files)
    client.timeout = 0.5
    with pytest.raises(TimeoutError, match="no response"):
        await client.register()


async def test_host_name_is_checked(mqtt_server: StartServer, tls_files: TlsFiles) -> None:
    server = await mqtt_server(on_publish=dps_script())
    client = DpsDeviceClient("not-in-the-cert.example", SCOPE, REG, KEY,
                             ssl_context=client_ssl_context(tls_files.ca), port=server.port,
                             timeout=5, connect_host="127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        await client.register()
