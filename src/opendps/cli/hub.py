"""``opendps hub …``: the hub's registry (devices, twins) and its telemetry stream, and
(``hub_links``) which hubs DPS links."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from ..client.hub_service import HubServiceClient
from ._common import JSON_OBJECT, hub_options, json_option, print_json, run, show, table
from ._instance import Target
from .hub_links import COMMANDS as LINK_COMMANDS

DEVICE_COLUMNS = [
    ("deviceId", lambda d: d.get("deviceId")),
    ("status", lambda d: d.get("status")),
    ("connectionState", lambda d: d.get("connectionState")),
    ("auth", lambda d: (d.get("authentication") or {}).get("type")),
    ("edge", lambda d: (d.get("capabilities") or {}).get("iotEdge")),
    ("lastActivity", lambda d: d.get("lastActivityTime")),
]


def _client(target: Target) -> HubServiceClient:
    return HubServiceClient.from_connection_string(
        target.connection_string, ca_file=target.ca_file, port=target.port)


@click.group()
def hub() -> None:
    """IoT hubs: link, create, list; device identities, twins, telemetry."""


for _command in LINK_COMMANDS:
    hub.add_command(_command)


@hub.group()
def device() -> None:
    """Device identities in the hub registry."""


@device.command("list")
@hub_options
@json_option
def device_list(target: Target, as_json: bool) -> None:
    """List the hub's device identities."""
    async def go() -> list[dict[str, Any]]:
        async with _client(target) as client:
            return await client.list_devices()
    table(run(go()), DEVICE_COLUMNS, as_json)


@device.command("show")
@click.option("--device-id", required=True)
@hub_options
@json_option
def device_show(target: Target, device_id: str, as_json: bool) -> None:
    """Show one device identity (with its keys, as the hub registry returns them)."""
    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            return await client.get_device(device_id)
    show(run(go()), as_json)


@device.command("delete")
@click.option("--device-id", required=True)
@click.option("--etag", default=None, help="Only if the identity still has this etag.")
@hub_options
def device_delete(target: Target, device_id: str, etag: str | None) -> None:
    """Delete a device identity and its twin."""
    async def go() -> None:
        async with _client(target) as client:
            await client.delete_device(device_id, if_match=etag or "*")
    run(go())
    click.echo(f"deleted device {device_id}")


@hub.group()
def twin() -> None:
    """Device twins."""


@twin.command("show")
@click.option("--device-id", required=True)
@hub_options
@json_option
def twin_show(target: Target, device_id: str, as_json: bool) -> None:
    """Show a device twin (tags, desired and reported properties)."""
    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            return await client.get_twin(device_id)
    show(run(go()), as_json)


@twin.command("update")
@click.option("--device-id", required=True)
@click.option("--desired", type=JSON_OBJECT, default=None,
              help="Desired-properties patch (JSON; null deletes a key).")
@click.option("--tags", type=JSON_OBJECT, default=None, help="Tags patch (JSON).")
@click.option("--etag", default=None, help="Only if the twin still has this etag.")
@hub_options
@json_option
def twin_update(target: Target, device_id: str, desired: dict | None, tags: dict | None,
                etag: str | None, as_json: bool) -> None:
    """Merge a patch into the twin's tags and desired properties."""
    if desired is None and tags is None:
        raise click.UsageError("give --desired and/or --tags")
    patch: dict[str, Any] = {}
    if tags is not None:
        patch["tags"] = tags
    if desired is not None:
        patch["properties"] = {"desired": desired}

    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            return await client.update_twin(device_id, patch, if_match=etag or "*")
    show(run(go()), as_json)


def az_event(event: dict[str, Any], with_properties: bool) -> dict[str, Any]:
    """The shape ``az iot hub monitor-events`` prints; a JSON payload is shown parsed."""
    payload = event.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            pass
    out: dict[str, Any] = {
        "origin": event.get("origin", ""),
        "module": event.get("module", ""),
        "interface": event.get("interface", ""),
        "component": event.get("component", ""),
        "payload": payload,
    }
    if with_properties:
        props = event.get("properties") or {}
        out["properties"] = {"system": props.get("system") or {},
                             "application": props.get("application") or {}}
    return {"event": out}


@hub.command("monitor-events")
@click.option("--device-id", default=None, help="Only this device's events.")
@click.option("--properties", "with_properties", is_flag=True,
              help="Show system and application properties.")
@click.option("--timeout", "seconds", type=float, default=None,
              help="Stop after this many seconds (exit 0); default: until Ctrl-C.")
@click.option("--after", type=int, default=0, show_default=True,
              help="Start after this event sequence number (0: every event the hub kept).")
@hub_options
@json_option
def monitor_events(target: Target, device_id: str | None, with_properties: bool,
                   seconds: float | None, after: int, as_json: bool) -> None:
    """Print telemetry as it arrives, like 'az iot hub monitor-events'."""
    def emit(event: dict[str, Any]) -> None:
        shaped = az_event(event, with_properties)
        if as_json:
            click.echo(json.dumps(shaped, separators=(",", ":"), ensure_ascii=False))
        else:
            print_json(shaped)

    async def follow() -> None:
        async with _client(target) as client:
            async for event in client.events(device_id=device_id, after=after, follow=True):
                emit(event)

    async def go() -> None:
        if seconds is None:
            await follow()
            return
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                await follow()
        except TimeoutError:
            if not deadline.expired():
                raise  # a network timeout, not the requested duration

    if not as_json:
        click.echo("Starting event monitor, use ctrl-c to stop...", err=True)
    try:
        run(go())
    except KeyboardInterrupt:
        pass
