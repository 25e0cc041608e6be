"""The ``opendps`` command: one group, one module per command group.

Every failure a user can cause or meet (a server error, an unreachable host, an untrusted
certificate, a refused device) ends as one line on stderr and exit status 1; tracebacks are
for bugs. Messages come from the server or the transport, never from a key.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import click

from ..client._http import ServiceError
from ..client.device import MqttError, ProvisioningError
from ..client.hub_device import HubRequestError
from ..config import ConfigError
from ..protocol.connstr import ConnectionStringError
from ..store.interface import StoreError
from .bench import bench
from .cert import cert
from .certificate import certificate
from .device import device
from .enrollment import enrollment
from .enrollment_group import enrollment_group
from .hub import hub
from .info import info
from .keys import compute_device_key
from .registration import registration
from .serve import serve


def describe(exc: BaseException) -> str | None:
    """The one line to print for an expected failure; None for a bug."""
    if isinstance(exc, ServiceError):
        return str(exc)
    if isinstance(exc, ProvisioningError | HubRequestError | MqttError):
        return str(exc)
    if isinstance(exc, ConnectionStringError):
        if "lacks" in str(exc):  # names a missing field, nothing the user typed
            return f"the {exc}"
        # other messages quote the malformed part, which could be a key
        return "the connection string is malformed (want HostName=…;SharedAccessKeyName=…;" \
               "SharedAccessKey=…)"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate check failed for {exc.host}:{exc.port} (wrong --ca-file?)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate check failed: {exc.verify_message or exc} (wrong --ca-file?)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc}"
    if isinstance(exc, aiohttp.ClientError):
        return f"HTTP request failed: {exc}"
    if isinstance(exc, StoreError | ConfigError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    if isinstance(exc, ConnectionError | OSError):
        return f"connection failed: {exc}"
    return None


class OpendpsGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = describe(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=OpendpsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opendps")
def cli() -> None:
    """Self-hosted Azure IoT Hub Device Provisioning Service and IoT hub."""


for command in (serve, info, enrollment, enrollment_group, registration, compute_device_key,
                hub, device, cert, certificate):
    cli.add_command(command)
cli.add_command(bench)


def main() -> None:
    cli(prog_name="opendps")
