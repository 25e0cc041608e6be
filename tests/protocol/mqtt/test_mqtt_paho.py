"""Cross-check against the real paho-mqtt 1.6.1 client over loopback TCP.

A tiny blocking-socket server thread drives a server-role MqttConnection and records every event.
The client waits for the server's acknowledgement at each step so the recorded order is fixed.
"""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as paho
import pytest

from opendps.protocol.mqtt import (
    NEED_DATA,
    PAUSED,
    ConnAck,
    ConnAckCode,
    Connect,
    ConnectionClosed,
    ConnectionState,
    Disconnect,
    MqttConnection,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    Role,
    SubAck,
    Subscribe,
    UnsupportedProtocolLevelError,
    Will,
)

TIMEOUT = 5.0
DEVICE = "device-1"
USERNAME = f"hub.example/{DEVICE}/?api-version=2021-04-12"
PASSWORD = "SharedAccessSignature sr=hub.example%2Fdevices%2Fdevice-1&sig=x&se=1"
C2D_FILTER = f"devices/{DEVICE}/messages/devicebound/#"
C2D_TOPIC = f"devices/{DEVICE}/messages/devicebound/%24.mid=m1"
EVENTS_TOPIC = f"devices/{DEVICE}/messages/events/"


class TinyServer:
    """Accepts one connection and answers like IoT Hub would, via MqttConnection."""

    def __init__(self, refuse_with: int = 0) -> None:
        self.refuse_with = refuse_with
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.seen: list = []
        self.got_puback = threading.Event()
        self.got_pingreq = threading.Event()
        self.mqtt = MqttConnection(Role.SERVER)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="tiny-mqtt-server", daemon=True)

    def __enter__(self) -> TinyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.join(TIMEOUT)
        self.listener.close()

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
            with sock:
                sock.settimeout(TIMEOUT)
                self._serve(sock)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.error = exc

    def _serve(self, sock: socket.socket) -> None:
        mqtt = self.mqtt
        while True:
            event = mqtt.next_event()
            if event is NEED_DATA:
                mqtt.receive_data(sock.recv(65536), now=time.monotonic())
                continue
            assert event is not PAUSED, "CONNECT is answered as soon as it is seen"
            self.seen.append(event)
            match event:
                case Connect():
                    sock.sendall(mqtt.send(ConnAck(False, self.refuse_with)))
                case Subscribe(packet_id=packet_id, topics=topics):
                    sock.sendall(mqtt.send(SubAck(packet_id, tuple(q for _, q in topics))))
                case Publish(qos=1, packet_id=packet_id):
                    sock.sendall(mqtt.send(PubAck(packet_id)))
                case Publish(qos=0):  # the device's last message: now send it one
                    c2d = Publish(C2D_TOPIC, b"to-device", 1, mqtt.next_packet_id())
                    sock.sendall(mqtt.send(c2d))
                case PubAck():
                    self.got_puback.set()
                case PingReq():
                    self.got_pingreq.set()
                    sock.sendall(mqtt.send(PingResp()))
                case ConnectionClosed(error=error) if error and error.connack_hint is not None:
                    sock.sendall(mqtt.send(ConnAck(False, error.connack_hint)))
                    return
                case ConnectionClosed():
                    return


def wait(event: threading.Event, what: str) -> None:
    assert event.wait(TIMEOUT), f"timed out waiting for {what}"


@pytest.mark.timeout(15)
def test_paho_client_against_server_role_connection():
    with TinyServer() as server:
        connected, subscribed, received = threading.Event(), threading.Event(), threading.Event()
        seen_by_client: list = []

        def on_connect(client, userdata, flags, rc):
            seen_by_client.append(("connack", flags["session present"], rc))
            connected.set()

        def on_subscribe(client, userdata, mid, granted_qos):
            seen_by_client.append(("suback", mid, granted_qos))
            subscribed.set()

        def on_message(client, userdata, msg):
            seen_by_client.append(("publish", msg.topic, msg.payload, msg.qos, msg.mid))
            received.set()

        client = paho.Client(client_id=DEVICE, clean_session=True, protocol=paho.MQTTv311)
        client.username_pw_set(USERNAME, PASSWORD)
        client.will_set(EVENTS_TOPIC, b"gone", qos=1)
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", server.port, keepalive=60)
        client.loop_start()
        try:
            wait(connected, "CONNACK")
            _, subscribe_mid = client.subscribe(C2D_FILTER, qos=1)
            wait(subscribed, "SUBACK")
            info = client.publish(EVENTS_TOPIC, b"temp=21", qos=1)
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()
            client.publish(EVENTS_TOPIC, b"temp=22", qos=0).wait_for_publish(TIMEOUT)
            wait(received, "the server's QoS 1 PUBLISH")
            wait(server.got_puback, "paho's PUBACK")
            client.disconnect()
        finally:
            client.loop_stop()

    assert server.error is None, server.error
    assert not server.thread.is_alive()
    assert server.seen == [
        Connect(DEVICE, USERNAME, PASSWORD.encode(), 60, True, Will(EVENTS_TOPIC, b"gone", 1)),
        Subscribe(subscribe_mid, ((C2D_FILTER, 1),)),
        Publish(EVENTS_TOPIC, b"temp=21", 1, info.mid),
        Publish(EVENTS_TOPIC, b"temp=22", 0, None),
        PubAck(1),
        Disconnect(),
        ConnectionClosed("peer sent DISCONNECT"),
    ]
    assert seen_by_client == [
        ("connack", 0, 0),
        ("suback", subscribe_mid, (1,)),
        ("publish", C2D_TOPIC, b"to-device", 1, 1),
    ]
    assert server.mqtt.inflight == set()


def connect_and_wait(client: paho.Client, port: int, keepalive: int = 60) -> list[int]:
    """Connect, run paho's loop until CONNACK; return the CONNACK return codes paho reported."""
    codes: list[int] = []
    connected = threading.Event()

    def on_connect(client, userdata, flags, rc):
        codes.append(rc)
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=keepalive)
    client.loop_start()
    wait(connected, "CONNACK")
    return codes


@pytest.mark.timeout(15)
def test_paho_keep_alive_pings_are_answered():
    with TinyServer() as server:
        client = paho.Client(client_id=DEVICE, protocol=paho.MQTTv311)
        try:
            assert connect_and_wait(client, server.port, keepalive=1) == [0]
            wait(server.got_pingreq, "paho's PINGREQ")  # paho pings after ~1 s of silence
            assert server.mqtt.keep_alive == 1
            assert server.mqtt.get_timer() is not None
            client.disconnect()
        finally:
            client.loop_stop()
    assert server.error is None, server.error
    assert server.seen[0] == Connect(DEVICE, None, None, 1, True, None)
    assert PingReq() in server.seen
    assert server.seen[-2:] == [Disconnect(), ConnectionClosed("peer sent DISCONNECT")]


@pytest.mark.timeout(15)
def test_paho_sees_a_refused_connack():
    with TinyServer(refuse_with=ConnAckCode.BAD_USERNAME_OR_PASSWORD) as server:
        client = paho.Client(client_id=DEVICE, protocol=paho.MQTTv311, reconnect_on_failure=False)
        client.username_pw_set("someone", "wrong")
        try:
            assert connect_and_wait(client, server.port) == [4]
        finally:
            client.loop_stop()
    assert server.error is None, server.error
    assert server.seen == [
        Connect(DEVICE, "someone", b"wrong", 60, True, None),
        ConnectionClosed("refused the connection: BAD_USERNAME_OR_PASSWORD"),
    ]


@pytest.mark.timeout(15)
def test_paho_mqtt_31_gets_unacceptable_protocol_version():
    with TinyServer() as server:
        client = paho.Client(client_id=DEVICE, protocol=paho.MQTTv31, reconnect_on_failure=False)
        try:
            assert connect_and_wait(client, server.port) == [1]
        finally:
            client.loop_stop()
    assert server.error is None, server.error
    (closed,) = server.seen
    assert isinstance(closed.error, UnsupportedProtocolLevelError)
    assert (closed.error.protocol_name, closed.error.level) == ("MQIsdp", 3)
    assert server.mqtt.state is ConnectionState.CLOSED
