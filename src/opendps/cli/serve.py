"""``opendps serve``: run DPS and the built-in hubs until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import click

from .. import config


def run_forever(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (faster sockets), the stdlib loop otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


@click.command("serve")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data directory: database, CA, keys (env OPENDPS_DATA_DIR).")
@click.option("--database", "database_url", default=None,
              help="Database URL, e.g. postgresql://… (default: SQLite in the data dir).")
@click.option("--bind", default=None, help="Address to listen on (default 0.0.0.0).")
@click.option("--https-port", type=int, default=None, help="HTTPS/WebSocket port (443).")
@click.option("--mqtt-port", type=int, default=None, help="MQTT port (8883).")
@click.option("--dps-host", "dps_host_name", default=None,
              help="Host name devices use for DPS (default localhost).")
@click.option("--hub-host", "hub_host_names", multiple=True,
              help="Built-in hub host name (repeatable; default localhost).")
@click.option("--roles", default=None,
              help="Roles this instance serves: dps,hub,api or all (env OPENDPS_ROLES).")
@click.option("--workers", type=int, default=None,
              help="Worker processes sharing the ports (env OPENDPS_WORKERS; default 1). "
                   "Use the number of CPU cores for throughput.")
def serve(**flags: Any) -> None:
    """Run the provisioning service and its hubs. Settings: defaults < opendps.toml in the
    data directory < OPENDPS_* environment < these flags."""
    from ..cluster import worker

    flags["hub_host_names"] = flags["hub_host_names"] or None
    try:
        # a worker takes its parent's settings as they are (cluster/worker.py)
        slot, settings = worker.from_env() or (None, config.load(flags))
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    from .. import server  # lazy: the server pulls in every engine

    try:
        if slot is None and settings.workers > 1:
            from ..cluster.supervisor import supervise

            status = supervise(settings)
            if status:
                raise SystemExit(status)
            return
        run_forever(server.serve(settings, slot))
    except KeyboardInterrupt:
        pass
    except server.PortInUse as exc:
        raise click.ClickException(str(exc)) from None
