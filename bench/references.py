"""The reference servers of ``run_all.py``, each on its own loopback address.

All present opendps's certificate (issued for the opendps host name), so clients connect to
the reference's address but check the same name: one client TLS context for every target.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import _server

HERE = Path(__file__).parent
ASSIGNING = '{"operationId":"ref-op","status":"assigning"}'
ASSIGNED = ('{"operationId":"ref-op","status":"assigned","registrationState":{"deviceId":'
            '"ref","assignedHub":"ref.example","substatus":"initialAssignment",'
            '"status":"assigned"}}')

NGINX_CONF = """daemon off;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  server {{
    listen {host}:443 ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    ssl_verify_client optional_no_ca;
    keepalive_requests 1000;
    location / {{
      default_type application/json;
      if ($request_method = PUT) {{ return 202 '{assigning}'; }}
      return 200 '{assigned}';
    }}
  }}
}}
"""

MOSQUITTO_CONF = """user root
listener 8883 {host}
certfile {cert}
keyfile {key}
allow_anonymous true
persistence false
max_connections -1
max_inflight_messages 0
log_dest stderr
log_type error
"""


@dataclass
class Reference:
    name: str
    host: str
    proc: subprocess.Popen
    pids: list[int] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def tls_files(data_dir: Path, tmp: Path) -> tuple[Path, Path]:
    """opendps's certificate and key, copied where a privilege-dropping daemon can read them."""
    tmp.mkdir(parents=True, exist_ok=True)
    cert, key = tmp / "server.pem", tmp / "server.key"
    shutil.copy(data_dir / "server.pem", cert)
    shutil.copy(data_dir / "server.key", key)
    key.chmod(0o644)
    tmp.chmod(0o755)
    return cert, key


def start_floor(cert: Path, key: Path, tmp: Path) -> Reference:
    host = _server.free_loopback()
    log = tmp / "floor.log"
    proc = subprocess.Popen([sys.executable, str(HERE / "floor_server.py"), "--host", host,
                             "--cert", str(cert), "--key", str(key)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _server.wait_listening(host, (443, 8883), proc, log)
    return Reference("floor", host, proc, [proc.pid])


def start_nginx(cert: Path, key: Path, tmp: Path, workers: int = 1) -> Reference | None:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        return None
    host = _server.free_loopback()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, tmp=tmp, host=host, cert=cert, key=key,
                                      assigning=ASSIGNING, assigned=ASSIGNED))
    log = tmp / "nginx.log"
    proc = subprocess.Popen([binary, "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _server.wait_listening(host, (443,), proc, log)
    return Reference("nginx", host, proc, [proc.pid, *_server.children(proc.pid)])


def start_mosquitto(cert: Path, key: Path, tmp: Path) -> Reference | None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        return None
    host = _server.free_loopback()
    conf = tmp / "mosquitto.conf"
    conf.write_text(MOSQUITTO_CONF.format(host=host, cert=cert, key=key))
    log = tmp / "mosquitto.log"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    _server.wait_listening(host, (8883,), proc, log)
    return Reference("mosquitto", host, proc, [proc.pid])
