"""Our hub device client against a scripted MQTT server: telemetry, twin GET, reported patch."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable

import pytest

from opendps.client.device import ConnectionLost, HubDeviceClient, HubRequestError
from opendps.client.hub_device import telemetry_topic
from opendps.client.tls import client_ssl_context
from opendps.protocol import hub_topics, sas
from opendps.protocol.mqtt import Publish

from .fake_mqtt import FakeMqttServer, Reply, StartServer, TlsFiles

KEY = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
TWIN = {"desired": {"fw": "1.0", "$version": 3}, "reported": {"$version": 1}}


def hub_script(patch_status: int = 204) -> Callable[[Publish], Reply]:
    def on_publish(packet: Publish) -> Reply:
        request = hub_topics.parse_twin_topic(packet.topic)
        if request is None:
            return []
        if request.kind == "get":
            return [(hub_topics.twin_response_topic(200, request.rid),
                     json.dumps(TWIN).encode(), 0)]
        version = 2 if patch_status == 204 else None
        body = b"" if patch_status == 204 else b'{"message":"bad patch"}'
        return [(hub_topics.twin_response_topic(patch_status, request.rid, version), body, 0)]
    return on_publish


def make_client(server: FakeMqttServer, tls_files: TlsFiles) -> HubDeviceClient:
    return HubDeviceClient("localhost", "dev-1", KEY, ssl_context=client_ssl_context(tls_files.ca),
                           port=server.port, timeout=5, connect_host="127.0.0.1")


async def test_connect_telemetry_and_twin(mqtt_server: StartServer,
                                          tls_files: TlsFiles) -> None:
    server = await mqtt_server(on_publish=hub_script())
    async with make_client(server, tls_files) as client:
        await client.send_telemetry({"t": 21.5}, {"alert": "yes no"}, message_id="m1")
        await client.send_telemetry(b"\x00raw")
        twin = await client.get_twin()
        version = await client.patch_reported({"state": "ok"})
    assert twin == TWIN
    assert version == 2

    connect = server.connects[0]
    assert (connect.client_id, connect.username) == (
        "dev-1", "localhost/dev-1/?api-version=2021-04-12")
    token = sas.parse(connect.password.decode())
    assert token.resource == "localhost/devices/dev-1" and token.key_name is None
    assert sas.signature_matches(token, [KEY])

    sent = server.publishes("devices/dev-1/messages/events/")
    assert [p.qos for p in sent] == [1, 1]
    bag = sent[0].topic[len("devices/dev-1/messages/events/"):]
    system, app = hub_topics.parse_property_bag(bag)
    assert system == {"message-id": "m1", "content-type": "application/json",
                      "content-encoding": "utf-8"}
    assert app == {"alert": "yes no"}
    assert json.loads(sent[0].payload) == {"t": 21.5}
    assert sent[1].topic == "devices/dev-1/messages/events/" and sent[1].payload == b"\x00raw"

    get = server.publishes("$iothub/twin/GET/?$rid=")
    patch = server.publishes("$iothub/twin/PATCH/properties/reported/?$rid=")
    assert len(get) == 1 and len(patch) == 1
    assert json.loads(patch[0].payload) == {"state": "ok"}


async def test_reported_patch_error(mqtt_server: StartServer, tls_files: TlsFiles) -> None:
    server = await mqtt_server(on_publish=hub_script(patch_status=400))
    async with make_client(server, tls_files) as client:
        with pytest.raises(HubRequestError) as info:
            await client.patch_reported({"x": 1})
    assert info.value.status == 400
    assert "bad patch" in str(info.value)


def test_telemetry_topic_encodes_like_the_python_sdk() -> None:
    topic = telemetry_topic("d", {"a b": "c/d"}, content_type="application/json")
    assert topic == "devices/d/messages/events/%24.ct=application%2Fjson&a%20b=c%2Fd"
    assert urllib.parse.unquote(topic).endswith("$.ct=application/json&a b=c/d")


async def test_lost_connection_fails_fast(mqtt_server: StartServer, tls_files: TlsFiles) -> None:
    server = await mqtt_server(drop_on_publish=True)
    client = make_client(server, tls_files)
    client.timeout = 20
    async with client:
        with pytest.raises(ConnectionLost):
            async with asyncio.timeout(5):  # far below the response timeout
                await client.send_telemetry("x")
