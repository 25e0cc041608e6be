"""``opendps info``: what clients need (ID scope, endpoints, CA, connection strings)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from ._common import console, json_option, print_json, run
from ._instance import bootstrap_info, load_settings


@click.command("info")
@click.option("--data-dir", envvar="OPENDPS_DATA_DIR", default=None,
              type=click.Path(file_okay=False), help="Data directory (env OPENDPS_DATA_DIR).")
@click.option("--database", default=None, help="Database URL (default: SQLite in the data dir).")
@json_option
def info(data_dir: str | None, database: str | None, as_json: bool) -> None:
    """Open the store (creating the instance on first use) and print its details."""
    data = run(bootstrap_info(load_settings(data_dir, database)))
    if as_json:
        print_json(data)
    else:
        render(data)


def render(data: dict[str, Any]) -> None:
    out = Table(show_header=False, title="opendps instance")
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    ports = data.get("ports") or {}
    for label, value in [
        ("ID scope", data.get("idScope")),
        ("device endpoint", data.get("deviceEndpoint")),
        ("service endpoint", data.get("serviceEndpoint")),
        ("ports", f"HTTPS {ports.get('https')}, MQTT {ports.get('mqtt')} (bind "
                  f"{data.get('bind')})"),
        ("CA certificate", data.get("caCertificate")),
        ("data directory", data.get("dataDir")),
        ("database", data.get("database")),
        ("service connection string", data.get("serviceConnectionString")),
    ]:
        out.add_row(label, str(value))
    for hub in data.get("hubs") or []:
        kind = "built-in" if hub.get("builtIn") else "external"
        out.add_row(f"hub {hub.get('hostName')} ({kind})", hub.get("connectionString") or "")
    console().print(out)
