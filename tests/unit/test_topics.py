"""DPS and hub MQTT grammars (§2, §7, §8.1, §8.2)."""

from __future__ import annotations

from opendps.protocol import dps_topics, hub_topics


def test_dps_username_python_shape() -> None:
    u = dps_topics.parse_username(
        "0ne00ABC123/registrations/dev-1/api-version=2019-03-31&ClientVersion="
        "azure-iot-device-provisioning-py%2F2.14.0")
    assert u is not None and u.id_scope == "0ne00ABC123" and u.registration_id == "dev-1"
    assert u.api_version == "2019-03-31"


def test_dps_username_rejects_hub_shape() -> None:
    assert dps_topics.parse_username("hub.example/dev-1/?api-version=2021-04-12") is None
    assert dps_topics.parse_username("just-a-name") is None


def test_response_topic_is_exactly_what_python_parses() -> None:
    topic = dps_topics.response_topic(202, "0f8a-uuid", 3)
    assert topic == "$dps/registrations/res/202/?$rid=0f8a-uuid&retry-after=3"
    # Python's parser: split on "$", part [2] is the property string
    props = topic.split("$")[2]
    assert dict(p.split("=") for p in props.split("&")) == {"rid": "0f8a-uuid",
                                                             "retry-after": "3"}


def test_dps_request_topics() -> None:
    reg = dps_topics.parse_request_topic("$dps/registrations/PUT/iotdps-register/?$rid=1")
    assert reg is not None and reg.kind == "register" and reg.rid == "1"
    poll = dps_topics.parse_request_topic(
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.a.b")
    assert poll is not None and poll.operation_id == "4.a.b"
    assert dps_topics.parse_request_topic("$dps/registrations/PUT/iotdps-register/") is None
    assert dps_topics.parse_request_topic("devices/x/messages/events/") is None


def test_hub_username_and_property_bags() -> None:
    u = hub_topics.parse_username("hub.local/dev-1/?api-version=2019-10-01&DeviceClientType=x")
    assert u is not None and u.host == "hub.local" and u.device_id == "dev-1"
    assert u.module_id is None
    assert hub_topics.parse_username("0ne1/registrations/dev") is None
    system, app = hub_topics.parse_property_bag(
        "%24.mid=m1&%24.ct=application%2Fjson&$.ce=utf-8&color=blue&flag&empty=")
    assert system == {"message-id": "m1", "content-type": "application/json",
                      "content-encoding": "utf-8"}
    assert app == {"color": "blue", "flag": None, "empty": ""}
    assert hub_topics.parse_property_bag("?a=1")[1] == {"a": "1"}


def test_twin_topics() -> None:
    get = hub_topics.parse_twin_topic("$iothub/twin/GET/?$rid=abc")
    assert get is not None and get.kind == "get" and get.rid == "abc"
    patch = hub_topics.parse_twin_topic("$iothub/twin/PATCH/properties/reported/?$rid=9")
    assert patch is not None and patch.kind == "patch-reported"
    assert hub_topics.twin_response_topic(204, "9", 5) == "$iothub/twin/res/204/?$rid=9&$version=5"
    assert hub_topics.telemetry_bag("devices/d/messages/events/a=1", "d") == "a=1"
    assert hub_topics.telemetry_bag("devices/other/messages/events/", "d") is None
