"""opendps: a self-hosted, wire-compatible Azure IoT Hub Device Provisioning Service."""

__version__ = "0.1.0"
