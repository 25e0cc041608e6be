"""Sans-I/O MQTT 3.1.1 (protocol level 4): packets, a strict codec and a connection state machine.

Enough MQTT to be the server end of the Azure IoT SDKs' DPS and IoT Hub transports (and the client
end in tests). It is a request/response endpoint's protocol layer, not a broker: no sockets,
no clocks, no asyncio; see ``MqttConnection``.
"""

from .codec import DEFAULT_MAX_PACKET_SIZE, Decoder, encode, encode_remaining_length
from .connection import MqttConnection
from .errors import (
    LocalProtocolError,
    MqttProtocolError,
    PacketTooLargeError,
    UnsupportedProtocolLevelError,
)
from .events import NEED_DATA, PAUSED, ConnectionClosed, Event, Sentinel
from .packets import (
    ConnAck,
    ConnAckCode,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    SubAckCode,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
)
from .state import ConnectionState, Role

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "NEED_DATA",
    "PAUSED",
    "ConnAck",
    "ConnAckCode",
    "Connect",
    "ConnectionClosed",
    "ConnectionState",
    "Decoder",
    "Disconnect",
    "Event",
    "LocalProtocolError",
    "MqttConnection",
    "MqttProtocolError",
    "Packet",
    "PacketTooLargeError",
    "PacketType",
    "PingReq",
    "PingResp",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "Role",
    "Sentinel",
    "SubAck",
    "SubAckCode",
    "Subscribe",
    "UnsubAck",
    "Unsubscribe",
    "UnsupportedProtocolLevelError",
    "Will",
    "encode",
    "encode_remaining_length",
]
