"""Three ``opendps serve`` instances on one PostgreSQL database behind nginx ``stream`` (the
template in deploy/nginx), each on its own loopback address, the balancer on a fourth. Devices
and operators only see the balancer's address, which is also every instance's DPS and hub
host name (as in a real deployment, where DNS points at the balancer)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from integration.raw import RawMqtt
from integration.servers import (
    ServerProcess,
    _free_loopback,
    create_pg_database,
    is_free,
    start_server,
)
from opendps.protocol.mqtt import MqttConnection, Role

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))
from render import render  # noqa: E402  (deploy/ is not a package)

PREFERRED = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def addresses(n: int = 4) -> list[str]:
    """127.0.0.2–5 when free (the instances first, the balancer last), else random ones."""
    if all(is_free(a) for a in PREFERRED[:n]):
        return PREFERRED[:n]
    chosen: list[str] = []
    while len(chosen) < n:
        candidate = _free_loopback()
        if candidate not in chosen:
            chosen.append(candidate)
    return chosen


@dataclass
class Balancer:
    """Looks like a ``ServerProcess`` to the SDK helpers: host, info, id_scope, ca_pem."""

    host: str
    first: ServerProcess
    proc: subprocess.Popen
    prefix: Path

    @property
    def info(self) -> dict:
        return self.first.info

    @property
    def env(self) -> dict[str, str]:
        return self.first.env

    @property
    def id_scope(self) -> str:
        return self.first.id_scope

    @property
    def ca_pem(self) -> str:
        return self.first.ca_pem

    def stream_log(self) -> str:
        path = self.prefix / "stream.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Cluster:
    db_url: str
    instances: list[ServerProcess]
    lb: Balancer
    names: dict[str, str] = field(default_factory=dict)  # instance name -> address

    def stop(self) -> None:
        self.lb.stop()
        for server in self.instances:
            server.stop()


def start_cluster(tmp: Path, n: int = 3) -> Cluster:
    """Start ``n`` instances on a fresh database, then nginx in front of them."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    hosts = addresses(n + 1)
    lb_host, instance_hosts = hosts[-1], hosts[:n]
    db_url = create_pg_database()

    def one(i: int) -> ServerProcess:
        return start_server(tmp, backend="postgresql", host=instance_hosts[i], extra_env={
            "OPENDPS_DATABASE_URL": db_url,
            "OPENDPS_DPS_HOST_NAME": lb_host,
            "OPENDPS_HUB_HOST_NAMES": lb_host,
            "OPENDPS_INSTANCE_NAME": f"node{i + 1}",
            "OPENDPS_RETRY_AFTER": "1",
        })

    # The first instance initialises the database; the others join at once, together. (All
    # at once on an empty database trips a race in instance.py's server certificate: two
    # put_setting calls, so the key of one instance can pair with the other's certificate.)
    instances = [one(0)]
    with ThreadPoolExecutor(n) as pool:
        instances += list(pool.map(one, range(1, n)))
    prefix = tmp / "nginx"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render(str(prefix), lb_host, instance_hosts))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=(prefix / "stderr.log").open("wb"))
    lb = Balancer(lb_host, instances[0], proc, prefix)
    deadline = time.monotonic() + 10
    while not (_listening(lb_host, 443) and _listening(lb_host, 8883)):
        if proc.poll() is not None or time.monotonic() > deadline:
            for server in instances:
                server.stop()
            raise RuntimeError(f"nginx did not start: {(prefix / 'stderr.log').read_text()}")
        time.sleep(0.05)
    names = {f"node{i + 1}": h for i, h in enumerate(instance_hosts)}
    return Cluster(db_url, instances, lb, names)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def direct_mqtt(instance: ServerProcess, lb: Balancer) -> RawMqtt:
    """A raw MQTT client on one instance's own address, verifying the balancer's name."""
    client = RawMqtt.__new__(RawMqtt)
    raw = socket.create_connection((instance.host, 8883), timeout=10)
    ctx = ssl.create_default_context(cafile=lb.info["caCertificate"])
    client.sock = ctx.wrap_socket(raw, server_hostname=lb.host)
    client.conn = MqttConnection(Role.CLIENT)
    return client


def direct_context(lb: Balancer) -> ssl.SSLContext:
    """TLS to an instance's own address: the certificate names the balancer's address."""
    ctx = ssl.create_default_context(cafile=lb.info["caCertificate"])
    ctx.check_hostname = False
    return ctx
