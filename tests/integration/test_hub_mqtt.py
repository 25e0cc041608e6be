"""The built-in hub's MQTT endpoint driven by raw packets: authentication, one connection per
device, telemetry properties, twin topics, and what it refuses."""

from __future__ import annotations

import json
import uuid

import pytest

from opendps.protocol import sas
from opendps.protocol.mqtt import ConnectionClosed, PubAck, Publish, SubAck, Subscribe

from .raw import RawMqtt
from .sdk_helpers import hub_rest


@pytest.fixture(scope="module")
def server(opendps_server):  # type: ignore[no-untyped-def]
    return opendps_server


@pytest.fixture
def device(server):  # type: ignore[no-untyped-def]
    device_id = f"hubdev-{uuid.uuid4().hex[:8]}"
    status, body = hub_rest(server, "PUT", f"/devices/{device_id}", {"deviceId": device_id})
    assert status == 200, body
    return device_id, body["authentication"]["symmetricKey"]["primaryKey"]


def hub_username(server, device_id: str) -> str:  # type: ignore[no-untyped-def]
    return f"{server.host}/{device_id}/?api-version=2021-04-12&DeviceClientType=raw-test"


def connect(server, device_id: str, key: str, ttl: int = 600) -> tuple[RawMqtt, int]:  # type: ignore[no-untyped-def]
    client = RawMqtt(server)
    token = sas.generate(f"{server.host}/devices/{device_id}", key, ttl=ttl)
    ack = client.connect(device_id, hub_username(server, device_id), token)
    return client, ack.return_code


def test_wrong_key_expired_unknown_and_disabled_are_refused(server, device) -> None:  # type: ignore[no-untyped-def]
    device_id, key = device
    for did, k, ttl in [(device_id, "A" * 43 + "=", 600), (device_id, key, -5),
                        ("no-such-device", key, 600)]:
        client, rc = connect(server, did, k, ttl)
        assert rc == 5
        assert client.closed_by_server()
        client.close()
    status, _ = hub_rest(server, "PUT", f"/devices/{device_id}",
                         {"deviceId": device_id, "status": "disabled",
                          "authentication": {"type": "sas", "symmetricKey": {
                              "primaryKey": key, "secondaryKey": key}}})
    assert status == 200
    client, rc = connect(server, device_id, key)
    assert rc == 5
    client.close()


def test_new_connection_drops_the_old_one(server, device) -> None:  # type: ignore[no-untyped-def]
    device_id, key = device
    first, rc1 = connect(server, device_id, key)
    assert rc1 == 0
    status, body = hub_rest(server, "GET", f"/devices/{device_id}")
    assert status == 200 and body["connectionState"] == "Connected"
    second, rc2 = connect(server, device_id, key)
    assert rc2 == 0
    try:
        assert first.closed_by_server()
        second.send(Publish(f"devices/{device_id}/messages/events/", b"still here", 1, 5))
        assert isinstance(second.next(), PubAck)
    finally:
        first.close()
        second.close()


def test_telemetry_properties_c_style_and_twin_topics(server, device) -> None:  # type: ignore[no-untyped-def]
    device_id, key = device
    client, rc = connect(server, device_id, key)
    assert rc == 0
    try:
        client.send(Subscribe(1, (("$iothub/twin/res/#", 1),
                                  ("$iothub/twin/PATCH/properties/desired/#", 1),
                                  ("devices/someone-else/messages/devicebound/#", 1))))
        sub = client.next()
        assert isinstance(sub, SubAck) and sub.return_codes == (1, 1, 0x80)
        topic = (f"devices/{device_id}/messages/events/%24.mid=m-1&%24.ct=application%2Fjson"
                 "&%24.ce=utf-8&room=kitchen")
        client.send(Publish(topic, b'{"t": 21}', 1, 2))
        assert client.next() == PubAck(2)
        client.send(Publish("$iothub/twin/GET/?$rid=r1", b"", 0))
        got = client.next()
        assert isinstance(got, Publish) and got.topic == "$iothub/twin/res/200/?$rid=r1"
        doc = json.loads(got.payload)
        assert doc["desired"]["$version"] >= 1 and doc["reported"]["$version"] >= 1
        client.send(Publish("$iothub/twin/PATCH/properties/reported/?$rid=r2",
                            b'{"fw": "2.0"}', 0))
        patched = client.next()
        assert isinstance(patched, Publish)
        assert patched.topic == (f"$iothub/twin/res/204/?$rid=r2&$version="
                                 f"{doc['reported']['$version'] + 1}")
        client.send(Publish("$iothub/twin/PATCH/properties/reported/?$rid=r3", b"[1]", 0))
        bad = client.next()
        assert isinstance(bad, Publish) and bad.topic == "$iothub/twin/res/400/?$rid=r3"
        # a desired update from the service arrives with its $version
        status, _ = hub_rest(server, "PATCH", f"/twins/{device_id}",
                             {"properties": {"desired": {"fan": "on"}}})
        assert status == 200
        pushed = client.next()
        assert isinstance(pushed, Publish)
        assert pushed.topic.startswith("$iothub/twin/PATCH/properties/desired/?$version=")
        assert json.loads(pushed.payload)["fan"] == "on"
    finally:
        client.close()
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "opendps", "hub", "monitor-events",
                          "--device-id", device_id, "--properties", "--timeout", "2", "--json"],
                         env=server.env, capture_output=True, text=True, timeout=30)
    event = json.loads(out.stdout.splitlines()[0])["event"]
    assert event["payload"] == {"t": 21}
    assert event["properties"]["application"] == {"room": "kitchen"}
    system = event["properties"]["system"]
    assert system["message-id"] == "m-1" and system["content-type"] == "application/json"
    assert system["iothub-connection-device-id"] == device_id
    status, twin = hub_rest(server, "GET", f"/twins/{device_id}")
    assert twin["properties"]["reported"]["fw"] == "2.0"


def test_pipelined_telemetry_is_stored_and_acknowledged_in_order(server, device) -> None:  # type: ignore[no-untyped-def]
    """A device that does not wait for each PUBACK: the messages are stored in the order sent
    and acknowledged in that order (MQTT 3.1.1 §4.6), the twin GET behind them last."""
    device_id, key = device
    client, rc = connect(server, device_id, key)
    assert rc == 0
    try:
        burst = b"".join(client.conn.send(Publish(f"devices/{device_id}/messages/events/",
                                                  b"%d" % i, 1, 10 + i)) for i in range(20))
        burst += client.conn.send(Publish("$iothub/twin/GET/?$rid=g", b"", 1, 30))
        client.send_bytes(burst)  # one write: the server reads them all at once
        got = [client.next() for _ in range(22)]
    finally:
        client.close()
    assert got[:21] == [PubAck(10 + i) for i in range(21)]
    assert isinstance(got[21], Publish) and got[21].topic == "$iothub/twin/res/200/?$rid=g"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "opendps", "hub", "monitor-events",
                          "--device-id", device_id, "--timeout", "2", "--json"],
                         env=server.env, capture_output=True, text=True, timeout=30)
    events = [json.loads(line)["event"] for line in out.stdout.splitlines()]
    assert [e["payload"] for e in events] == list(range(20))  # the log is in seq order


@pytest.mark.parametrize("case", ["unknown-topic", "other-device-telemetry", "qos2"])
def test_refused_publishes_close_the_connection(server, device, case: str) -> None:  # type: ignore[no-untyped-def]
    device_id, key = device
    client, rc = connect(server, device_id, key)
    assert rc == 0
    try:
        if case == "unknown-topic":
            client.send(Publish("$iothub/nothing/here", b"x", 1, 1))
        elif case == "other-device-telemetry":
            client.send(Publish("devices/another/messages/events/", b"x", 1, 1))
        else:
            client.send(Publish(f"devices/{device_id}/messages/events/", b"x", 2, 1))
        event = client.next()
        assert isinstance(event, ConnectionClosed)
    finally:
        client.close()
    again, rc = connect(server, device_id, key)
    assert rc == 0
    again.close()


def test_registry_rest_device_lifecycle_and_auth(server) -> None:  # type: ignore[no-untyped-def]
    device_id = f"rest-{uuid.uuid4().hex[:8]}"
    status, created = hub_rest(server, "PUT", f"/devices/{device_id}", {
        "deviceId": device_id, "capabilities": {"iotEdge": True}})
    assert status == 200 and created["capabilities"] == {"iotEdge": True}
    assert created["authentication"]["type"] == "sas"
    status, fetched = hub_rest(server, "GET", f"/devices/{device_id}")
    assert status == 200 and fetched["etag"] == created["etag"]
    status, _ = hub_rest(server, "DELETE", f"/devices/{device_id}")
    assert status == 204
    status, missing = hub_rest(server, "GET", f"/devices/{device_id}")
    assert status == 404 and "DeviceNotFound" in missing["Message"]
    status, _ = hub_rest(server, "GET", f"/twins/{device_id}")
    assert status == 404

    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=server.info["caCertificate"])
    wrong = sas.generate(server.host, "A" * 43 + "=", key_name="iothubowner")
    req = urllib.request.Request(f"https://{server.host}/devices?api-version=2021-04-12",
                                 headers={"Authorization": wrong})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert err.value.code == 401
