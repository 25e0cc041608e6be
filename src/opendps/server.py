"""Composition root: settings → store → instance → engines → listeners."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from .api.app import build_app
from .api.context import ApiContext
from .api.device_front import front_factory
from .cluster.compose import join
from .cluster.roles import INSTANCE_HEADER
from .cluster.worker import WorkerSlot
from .config import Settings
from .hub.builtin import BuiltinHub
from .instance import Instance, bootstrap, refresh_server_certificate, write_atomic
from .linked_hubs import LinkedHubs
from .provisioning.allocation_policy import AllocationSettings, Allocator
from .provisioning.engine import ProvisioningEngine
from .provisioning.webhook import WebhookAllocator
from .store import open_store
from .store.cache import CachedStore
from .store.interface import Store
from .transport.mqtt_listener import start_mqtt_listener
from .transport.router import SessionRouter
from .transport.tls import TlsConfig
from .transport.tls_transport import start_tls_server
from .transport.websocket import websocket_handler

log = logging.getLogger("opendps")
CACHE_CHANNEL = "store:changed"
HUBS_CHANNEL = "hubs:changed"  # the linked hubs changed: every member reloads its hubs


class PortInUse(RuntimeError):
    pass


@dataclass
class Running:
    instance: Instance
    store: Store
    runner: web.AppRunner
    mqtt: asyncio.Server
    https: asyncio.Server | None = None  # serves ``runner``'s app through the TLS transport
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        if self.https is not None:
            self.https.close()
        self.mqtt.close()
        for closer in self.closers:
            await closer()
        await self.runner.cleanup()
        await self.store.close()


async def prepare(settings: Settings) -> Instance:
    """Migrate and bootstrap once, then let go of the store: ``serve --workers N`` does this in
    the parent so its workers never race to create the ID scope, keys or certificates."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db_url)
    try:
        return await bootstrap(settings, store)
    finally:
        await store.close()


async def start(settings: Settings, worker: WorkerSlot | None = None) -> Running:
    """One instance; ``worker``: one of several processes sharing the ports (SO_REUSEPORT)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store: Store = CachedStore(await open_store(settings.db_url))  # type: ignore[assignment]
    reuse_port = worker is not None and worker.count > 1
    try:
        instance = await bootstrap(settings, store)
        # PostgreSQL: LISTEN/NOTIFY bus; SQLite workers: unix datagrams; cluster roles
        member = await join(settings, store, worker)
        bus, connections = member.bus, member.connections
        # a write on any instance clears every instance's read cache (the bus carries it)
        bus.subscribe(CACHE_CHANNEL, lambda _: store.invalidate())  # type: ignore[attr-defined]
        store.on_write = lambda: bus.publish(CACHE_CHANNEL, None)  # type: ignore[attr-defined]
        hubs = {
            h.host_name.lower(): BuiltinHub(store, h.host_name, bus, connections,
                                            telemetry_keep=settings.telemetry_keep,
                                            policies=h.policies)
            for h in instance.hubs if h.built_in
        }
        linked = LinkedHubs(store, hubs, ca_file=settings.external_hub_ca_file)
        tls = TlsConfig(instance.cert_path, instance.key_path)
        # several addresses (comma-separated) let extra hub host names resolve to this server
        addresses = settings.bind_addresses
        binds: str | list[str] = addresses if len(addresses) > 1 else addresses[0]

        reloading = asyncio.Lock()
        reloads: set[asyncio.Task[None]] = set()

        async def reload_hubs() -> None:
            """Start or stop built-in hubs, then cover new host names in the certificate."""
            async with reloading:
                records = {h.host_name.lower(): h for h in await store.list_hubs()
                           if h.built_in}
                for key in [k for k in hubs if k not in records]:
                    del hubs[key]
                for key, record in records.items():
                    if key not in hubs:
                        hubs[key] = BuiltinHub(store, record.host_name, bus, connections,
                                               telemetry_keep=settings.telemetry_keep,
                                               policies=record.policies)
                await refresh_server_certificate(settings, store)
                tls.reload()

        async def hubs_changed() -> None:
            """After a hub write through this member: reload here, then tell the others (the
            new certificate is stored by then, so they only pick it up)."""
            await reload_hubs()
            bus.publish(HUBS_CHANNEL, {"instance": member.instance_id})

        def hubs_changed_elsewhere(event: object) -> None:
            if not isinstance(event, dict) or event.get("instance") == member.instance_id:
                return
            store.invalidate()  # type: ignore[attr-defined]
            task = asyncio.ensure_future(reload_hubs())
            reloads.add(task)
            task.add_done_callback(_reload_done(reloads))

        bus.subscribe(HUBS_CHANNEL, hubs_changed_elsewhere)

        webhook = WebhookAllocator(ca_file=settings.webhook_ca_file,
                                   timeout=settings.webhook_timeout)
        allocator = Allocator(AllocationSettings(settings.allocation_policy, settings.location),
                              webhook)
        engine = ProvisioningEngine(store, linked, id_scope=instance.id_scope,
                                    retry_after=settings.retry_after, allocator=allocator)
        router = member.router(SessionRouter(engine, hubs))
        ctx = ApiContext(engine, store, hubs, instance.dps_host_name, bus, connections,
                         websocket=websocket_handler(router, settings.mqtt_connect_timeout),
                         max_ca_certificates=settings.max_ca_certificates,
                         max_linked_hubs=settings.max_linked_hubs,
                         external_hub_ca_file=settings.external_hub_ca_file,
                         hubs_changed=hubs_changed)
        app = build_app(ctx)
        member.install(app)
        # a live monitor stream must not hold a shutdown for aiohttp's default 60 s
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        assert runner.server is not None  # set by setup(); it is the protocol factory
        try:
            # the device routes are answered by device_front; any other request's connection
            # goes to aiohttp's web.Server, which makes one RequestHandler for it. Handlers
            # find the client's chain in request.transport.get_extra_info(...)
            front = front_factory(engine, runner.server, serve_device="dps" in member.roles,
                                  headers=((INSTANCE_HEADER, member.name),))
            https = await start_tls_server(front, binds, settings.https_port, tls,
                                           reuse_port=reuse_port)
        except OSError as exc:
            await runner.cleanup()
            raise port_error("HTTPS", settings.bind, settings.https_port, exc) from None
        try:
            mqtt = await start_mqtt_listener(router, binds, settings.mqtt_port, tls,
                                             connect_timeout=settings.mqtt_connect_timeout,
                                             reuse_port=reuse_port)
        except OSError as exc:
            https.close()
            await runner.cleanup()
            raise port_error("MQTT", settings.bind, settings.mqtt_port, exc) from None
        member.readiness.checks.update(mqtt=mqtt.is_serving, https=https.is_serving)
    except BaseException:
        if "member" in locals():
            for closer in member.closers:
                await closer()
        await store.close()
        raise
    return Running(instance, store, runner, mqtt, https=https,
                   closers=[engine.close, linked.close, webhook.close, *member.closers])


def _reload_done(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reloading the hubs after a change elsewhere failed",
                      exc_info=task.exception())

    return done


def port_error(what: str, host: str, port: int, exc: OSError) -> PortInUse:
    if exc.errno == errno.EACCES:
        hint = (f"binding port {port} needs privileges: run as root, or grant the capability "
                f"with 'sudo setcap cap_net_bind_service=+ep {sys.executable}', or choose "
                f"another port with --{'https' if what == 'HTTPS' else 'mqtt'}-port (the "
                "official SDKs always connect to 443 and 8883, so put a port-preserving proxy "
                "in front in that case)")
    elif exc.errno == errno.EADDRINUSE:
        hint = (f"another program already listens on {host}:{port}; stop it, or bind opendps "
                "to another address with --bind")
    else:
        hint = str(exc)
    return PortInUse(f"cannot listen for {what} on {host}:{port}: {hint}")


def describe(instance: Instance) -> str:
    s = instance.settings
    hubs = ", ".join(h.host_name for h in instance.hubs)
    return "\n".join([
        f"opendps is running (ID scope {instance.id_scope})",
        f"  device endpoint   {instance.dps_host_name}  (MQTT {s.bind}:{s.mqtt_port}, "
        f"HTTPS and MQTT/WebSocket {s.bind}:{s.https_port})",
        f"  hubs              {hubs}",
        f"  trusted root CA   {instance.ca_path}",
        "  devices: pass the CA file as server_verification_cert; operators: "
        "'opendps info' prints the connection strings",
    ])


def write_info(instance: Instance) -> None:
    """``info.json`` beside the database, for scripts and tests (0600: it holds keys)."""
    import json

    write_atomic(instance.settings.data_dir / "info.json",
                 json.dumps(instance.info(), indent=2), 0o600)


async def serve(settings: Settings, worker: WorkerSlot | None = None) -> None:
    """Run until SIGINT/SIGTERM; a worker also stops when its parent is gone."""
    running = await start(settings, worker)
    # what start-up built (modules, schema, TLS contexts) lives as long as the process: keep
    # it out of the cyclic collector's full passes, which otherwise walk it again and again
    gc.collect()
    gc.freeze()
    if worker is None:
        write_info(running.instance)
        print(describe(running.instance), flush=True)
    else:  # the parent writes info.json and describes the server once every worker is up
        worker.report_ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if worker is not None:
        worker.watch_parent(stop.set)  # a parent killed during start is noticed here at once
    try:
        await stop.wait()
    finally:
        await running.close()
