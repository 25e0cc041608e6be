"""Bytes <-> packets for MQTT 3.1.1 (protocol level 4), strictly.

``encode`` (encoder.py) refuses to produce anything the spec forbids (LocalProtocolError);
``Decoder`` (decoder.py) turns a byte stream into packets and raises MqttProtocolError on the
first violation. Neither knows about connection state: whether a CONNACK may arrive now is the
connection's business.
"""

from .decoder import DEFAULT_MAX_PACKET_SIZE, Decoder
from .encoder import encode, encode_remaining_length
from .errors import (
    LocalProtocolError,
    MqttProtocolError,
    PacketTooLargeError,
    UnsupportedProtocolLevelError,
)

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "Decoder",
    "LocalProtocolError",
    "MqttProtocolError",
    "PacketTooLargeError",
    "UnsupportedProtocolLevelError",
    "encode",
    "encode_remaining_length",
]
