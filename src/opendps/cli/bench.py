"""``opendps bench …``: load a running server with simulated devices and report the figures.

The connection comes from the local instance (``info.json``) like every other client command;
server CPU and peak RSS are read from ``/proc`` when ``--server-pid`` names the server, so
they are only available on the server's own machine.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..client.loadgen import (
    DeviceFleet,
    HubTarget,
    RegisterLoad,
    RegisterTarget,
    provision,
    run,
    run_idle,
    run_register,
    run_telemetry,
)
from ..client.service import DpsServiceClient
from ._common import json_option, print_json
from ._instance import instance_info

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Endpoint:
    connection_string: str
    ca_file: str | None
    id_scope: str
    host: str
    connect_host: str | None
    https_port: int
    mqtt_port: int

    def register_target(self) -> RegisterTarget:
        return RegisterTarget(self.host, self.id_scope, self.connect_host, self.https_port,
                              self.mqtt_port)

    async def new_fleet(self, attestation: str) -> DeviceFleet:
        fleet = DeviceFleet.new(attestation, self.ca_file)
        async with DpsServiceClient.from_connection_string(
                self.connection_string, ca_file=self.ca_file, port=self.https_port) as svc:
            await fleet.create_group(svc)
        return fleet


def endpoint_options(f: F) -> F:
    """The target server: the local instance's by default, each part overridable."""

    @functools.wraps(f)
    def wrapper(*args: Any, data_dir: str | None, connection_string: str | None,
                ca_file: str | None, id_scope: str | None, host: str | None,
                connect_host: str | None, **kwargs: Any) -> Any:
        info = instance_info(data_dir, bootstrap=False) if not (
            connection_string and id_scope and host) else {}
        ports = info.get("ports") or {}
        endpoint = Endpoint(
            connection_string or info.get("serviceConnectionString") or "",
            ca_file or info.get("caCertificate"), id_scope or info.get("idScope") or "",
            host or info.get("deviceEndpoint") or "", connect_host,
            int(ports.get("https") or 443), int(ports.get("mqtt") or 8883))
        if not (endpoint.connection_string and endpoint.id_scope and endpoint.host):
            raise click.ClickException("no running instance found: pass --data-dir, or "
                                       "--connection-string, --id-scope and --host")
        return f(*args, endpoint=endpoint, **kwargs)

    for name, help_text in (
            ("--connect-host", "Connect here instead of the device endpoint (name checks "
                               "still use the endpoint)."),
            ("--host", "Device endpoint host name (default: the instance's)."),
            ("--id-scope", "ID scope (default: the instance's)."),
            ("--ca-file", "CA to trust (default: the instance's)."),
            ("--connection-string", "DPS service connection string, to create the group."),
            ("--data-dir", "Local instance to read the connection from.")):
        wrapper = click.option(name, default=None, help=help_text,
                               envvar="OPENDPS_DATA_DIR" if name == "--data-dir" else None
                               )(wrapper)
    return wrapper  # type: ignore[return-value]


server_pid_option = click.option(
    "--server-pid", "server_pids", type=int, multiple=True,
    help="Read server CPU and peak RSS from /proc/PID (repeatable: nginx workers).")


@contextlib.contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A bar on stderr for people; nothing for ``--json`` or a pipe."""
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        out = Table(show_header=False, title=f"opendps bench {result.get('kind')}")
        out.add_column(style="bold")
        out.add_column()
        for key, value in result.items():
            out.add_row(key, str(value) if value is not None else "")
        Console().print(out)
    if result.get("error_count"):
        sys.exit(1)


@click.group()
def bench() -> None:
    """Load generators: DPS registrations, hub telemetry, idle hub connections."""


@bench.command("register")
@click.option("--transport", type=click.Choice(["https", "mqtt"]), default="https")
@click.option("--devices", type=int, default=200, show_default=True)
@click.option("--duration", type=float, default=None, help="Stop starting devices after S s.")
@click.option("--concurrency", type=int, default=32, show_default=True)
@click.option("--rate", type=float, default=None, help="Device starts per second (default: "
              "as fast as the concurrency allows).")
@click.option("--attestation", type=click.Choice(["symmetric-key", "x509"]),
              default="symmetric-key", show_default=True)
@click.option("--poll-immediately", is_flag=True,
              help="Poll at once instead of honouring retry-after (measures the server).")
@click.option("--timeout", type=float, default=30.0, show_default=True)
@server_pid_option
@endpoint_options
@json_option
def register_cmd(endpoint: Endpoint, transport: str, devices: int, duration: float | None,
                 concurrency: int, rate: float | None, attestation: str,
                 poll_immediately: bool, timeout: float, server_pids: tuple[int, ...],
                 as_json: bool) -> None:
    """N devices, each a full registration over a new TLS connection, in a new group."""
    load = RegisterLoad(transport, devices, duration, concurrency, rate, poll_immediately,
                        timeout)

    async def go() -> dict[str, Any]:
        fleet = await endpoint.new_fleet(attestation)
        try:
            with progress_bar(devices, f"register {transport}", not as_json) as tick:
                return await run_register(endpoint.register_target(), load, fleet,
                                          server_pids=list(server_pids), progress=tick)
        finally:
            fleet.cleanup()
    report(run(go()), as_json)


def _hub_target(endpoint: Endpoint) -> HubTarget:
    fleet = DeviceFleet.new("symmetric-key", endpoint.ca_file)
    return HubTarget(fleet.base_context(), endpoint.connect_host, endpoint.mqtt_port)


@bench.command("telemetry")
@click.option("--devices", type=int, default=100, show_default=True)
@click.option("--rate", type=float, default=1.0, show_default=True,
              help="Messages per second per device (0: as fast as PUBACKs return).")
@click.option("--duration", type=float, default=10.0, show_default=True)
@click.option("--payload-size", type=int, default=64, show_default=True)
@server_pid_option
@endpoint_options
@json_option
def telemetry_cmd(endpoint: Endpoint, devices: int, rate: float, duration: float,
                  payload_size: int, server_pids: tuple[int, ...], as_json: bool) -> None:
    """M devices (registered through DPS first) publishing QoS 1 telemetry."""
    async def go() -> dict[str, Any]:
        fleet = await endpoint.new_fleet("symmetric-key")
        hub_devices = await provision(endpoint.register_target(), fleet, devices)
        total = int(devices * rate * duration) if rate else 0
        with progress_bar(total, "telemetry", not as_json and total > 0) as tick:
            return await run_telemetry(_hub_target(endpoint), hub_devices, rate=rate,
                                       duration=duration, payload_size=payload_size,
                                       server_pids=list(server_pids), progress=tick)
    report(run(go()), as_json)


@bench.command("idle")
@click.option("--connections", type=int, default=1000, show_default=True)
@click.option("--hold", type=float, default=5.0, show_default=True,
              help="Seconds to hold every connection open before checking them.")
@server_pid_option
@endpoint_options
@json_option
def idle_cmd(endpoint: Endpoint, connections: int, hold: float,
             server_pids: tuple[int, ...], as_json: bool) -> None:
    """K hub connections (devices registered through DPS first) held open."""
    async def go() -> dict[str, Any]:
        fleet = await endpoint.new_fleet("symmetric-key")
        hub_devices = await provision(endpoint.register_target(), fleet, connections)
        with progress_bar(connections, "connect", not as_json) as tick:
            return await run_idle(_hub_target(endpoint), hub_devices, hold=hold,
                                  server_pids=list(server_pids), progress=tick)
    report(run(go()), as_json)
