"""``opendps registration …``: device registration states (what DPS recorded per device)."""

from __future__ import annotations

from typing import Any

import click

from ..client.service import DpsServiceClient
from ._common import json_option, run, service_options, show, table
from ._instance import Target

COLUMNS = [
    ("registrationId", lambda r: r.get("registrationId")),
    ("deviceId", lambda r: r.get("deviceId")),
    ("assignedHub", lambda r: r.get("assignedHub")),
    ("status", lambda r: r.get("status")),
    ("substatus", lambda r: r.get("substatus")),
    ("updated", lambda r: r.get("lastUpdatedDateTimeUtc")),
]


def _client(target: Target) -> DpsServiceClient:
    return DpsServiceClient.from_connection_string(
        target.connection_string, ca_file=target.ca_file, port=target.port)


@click.group()
def registration() -> None:
    """Device registration states: show, list (per group), delete."""


@registration.command("show")
@click.option("--registration-id", required=True)
@service_options
@json_option
def show_cmd(target: Target, registration_id: str, as_json: bool) -> None:
    """Show one device's registration state."""
    async def go() -> dict[str, Any]:
        async with _client(target) as client:
            return await client.get_registration(registration_id)
    show(run(go()), as_json)


@registration.command("list")
@click.option("--group-id", required=True, help="The enrollment group whose devices to list.")
@service_options
@json_option
def list_cmd(target: Target, group_id: str, as_json: bool) -> None:
    """List the registration states of an enrollment group's devices (all pages)."""
    async def go() -> list[dict[str, Any]]:
        async with _client(target) as client:
            return await client.query_registrations(group_id)
    table(run(go()), COLUMNS, as_json)


@registration.command("delete")
@click.option("--registration-id", required=True)
@click.option("--etag", default=None, help="Only if the state still has this etag.")
@service_options
def delete(target: Target, registration_id: str, etag: str | None) -> None:
    """Delete a registration state (the device may then register afresh)."""
    async def go() -> None:
        async with _client(target) as client:
            await client.delete_registration(registration_id, if_match=etag)
    run(go())
    click.echo(f"deleted registration {registration_id}")
