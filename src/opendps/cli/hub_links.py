"""``opendps hub link|create|update|unlink|list``: the IoT hubs DPS assigns devices to, like
``az iot dps linked-hub …``.

A hub is either built in (served by this instance) or external (an Azure IoT hub or another
opendps, reached with its connection string). The server's PUT replaces a hub's settings,
so ``update`` reads the current ones and sends them back with the changes. ``link`` and
``create`` refuse an existing name: re-linking a built-in hub as external would drop its keys.

These commands name the DPS connection string ``--dps-connection-string``, because for
``link`` (as for ``az iot dps linked-hub create``) ``--connection-string`` is the hub's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from ..client.service import DpsServiceClient
from ..protocol import connstr
from ._common import json_option, run, service_options_named, show, table
from ._instance import Target

COLUMNS: list[tuple[str, Callable[[dict], Any]]] = [
    ("name", lambda h: h.get("name")),
    ("built-in", lambda h: h.get("builtIn")),
    ("weight", lambda h: h.get("allocationWeight")),
    ("allocation", lambda h: h.get("applyAllocationPolicy")),
    ("location", lambda h: h.get("location")),
]

dps_options = service_options_named("--dps-connection-string")
host_argument = click.argument("host", metavar="HOST")
weight_option = click.option(
    "--weight", type=click.IntRange(0, 1000), default=None,
    help="allocationWeight: the hub's share of devices under the hashed (evenly weighted) "
         "policy (0-1000; server default 1).")
location_option = click.option("--location", default=None,
                               help="A region label, for the geoLatency policy.")
no_allocation_option = click.option(
    "--no-allocation", is_flag=True,
    help="Leave the hub out of allocation (applyAllocationPolicy false): only enrollments "
         "that name it get it.")


def _client(target: Target) -> DpsServiceClient:
    return DpsServiceClient.from_connection_string(
        target.connection_string, ca_file=target.ca_file, port=target.port)


def _find(hubs: list[dict[str, Any]], host: str) -> dict[str, Any] | None:
    """Host names are case-insensitive (the server stores them lowercased)."""
    return next((h for h in hubs if str(h.get("name", "")).lower() == host.lower()), None)


async def _refuse_existing(client: DpsServiceClient, host: str) -> None:
    if _find(await client.list_linked_hubs(), host) is not None:
        raise click.ClickException(f"hub {host} is already linked; use 'opendps hub update'")


def _hub_connection_string(value: str, host: str) -> str:
    """``-`` reads it from stdin (keeps the key off the command line); checked locally so a
    typo never reaches the server, and no message quotes the text (it holds a key)."""
    if value == "-":
        value = sys.stdin.readline().strip()
    try:
        parsed = connstr.parse(value)
    except connstr.ConnectionStringError as exc:
        if "lacks" in str(exc):
            raise click.BadParameter(f"the {exc}", param_hint="--connection-string") from None
        raise click.BadParameter("malformed (want HostName=…;SharedAccessKeyName=…;"
                                 "SharedAccessKey=…)", param_hint="--connection-string") from None
    if parsed.host_name.lower() != host.lower():
        raise click.BadParameter(f"its HostName {parsed.host_name!r} is not {host!r}",
                                 param_hint="--connection-string")
    return value


@click.command("list")
@dps_options
@json_option
def list_hubs(target: Target, as_json: bool) -> None:
    """List the linked hubs (name, built-in, weight, allocation, location)."""
    async def go() -> list[dict[str, Any]]:
        async with _client(target) as client:
            return await client.list_linked_hubs()
    table(run(go()), COLUMNS, as_json)


@click.command("link")
@host_argument
@click.option("--connection-string", "hub_connection_string", required=True, metavar="CS",
              help="The hub's connection string (a policy with registry read/write); "
                   "'-' reads it from stdin.")
@weight_option
@no_allocation_option
@location_option
@dps_options
@json_option
def link(target: Target, host: str, hub_connection_string: str, weight: int | None,
         no_allocation: bool, location: str | None, as_json: bool) -> None:
    """Link an external hub (Azure IoT Hub or another opendps); the server tries its
    credentials first."""
    hub_connection_string = _hub_connection_string(hub_connection_string, host)

    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            await _refuse_existing(client, host)
            return await client.put_linked_hub(
                host, connection_string=hub_connection_string, built_in=False,
                allocation_weight=weight, apply_allocation_policy=False if no_allocation
                else None, location=location)
    show(run(go()), as_json)


@click.command("create")
@host_argument
@weight_option
@no_allocation_option
@location_option
@dps_options
@json_option
def create(target: Target, host: str, weight: int | None, no_allocation: bool,
           location: str | None, as_json: bool) -> None:
    """Add a built-in hub, served by this instance under a new host name."""
    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            await _refuse_existing(client, host)
            return await client.put_linked_hub(
                host, built_in=True, allocation_weight=weight,
                apply_allocation_policy=False if no_allocation else None, location=location)
    created = run(go())
    show(created, as_json)
    name = created.get("name") or host
    click.echo(f"note: devices connect to {name} by name: make it resolve to this server "
               "(DNS or /etc/hosts).", err=as_json)
    click.echo(f"note: the server certificate now covers {name}; devices that trust the "
               "instance's CA need nothing new.", err=as_json)


@click.command("update")
@host_argument
@weight_option
@click.option("--allocation/--no-allocation", default=None,
              help="Include the hub in allocation (applyAllocationPolicy), or not.")
@location_option
@click.option("--connection-string", "hub_connection_string", default=None, metavar="CS",
              help="External hubs: new credentials (e.g. after a key rotation); '-' reads "
                   "stdin.")
@dps_options
@json_option
def update(target: Target, host: str, weight: int | None, allocation: bool | None,
           location: str | None, hub_connection_string: str | None, as_json: bool) -> None:
    """Change a hub's weight, allocation or location (the rest is kept)."""
    if weight is None and allocation is None and location is None \
            and hub_connection_string is None:
        raise click.UsageError("nothing to change: give --weight, --allocation/--no-allocation,"
                               " --location or --connection-string")
    if hub_connection_string is not None:
        hub_connection_string = _hub_connection_string(hub_connection_string, host)

    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            hubs = await client.list_linked_hubs()
            current = _find(hubs, host)
            if current is None:
                names = ", ".join(str(h.get("name")) for h in hubs) or "none"
                raise click.ClickException(f"hub {host} is not linked (linked: {names})")
            built_in = bool(current.get("builtIn"))
            if built_in and hub_connection_string is not None:
                raise click.UsageError(f"{host} is built in: it has no connection string")
            return await client.put_linked_hub(
                str(current.get("name") or host), built_in=built_in,
                connection_string=hub_connection_string,
                allocation_weight=current.get("allocationWeight") if weight is None
                else weight,
                apply_allocation_policy=current.get("applyAllocationPolicy")
                if allocation is None else allocation,
                location=current.get("location") if location is None else location)
    show(run(go()), as_json)


@click.command("unlink")
@host_argument
@dps_options
def unlink(target: Target, host: str) -> None:
    """Unlink a hub: DPS stops assigning devices to it."""
    async def go() -> None:
        async with _client(target) as client:
            await client.unlink_hub(host)
    run(go())
    click.echo(f"unlinked hub {host}")


COMMANDS = (list_hubs, link, create, update, unlink)
