"""Start and measure an ``opendps serve`` process for benchmarks (loopback only)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_loopback() -> str:
    for _ in range(200):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            for port in (443, 8883):
                with socket.socket() as s:
                    s.bind((host, port))
            return host
        except OSError:
            continue
    raise RuntimeError("no free loopback address")


@dataclass
class Server:
    host: str
    data_dir: Path
    proc: subprocess.Popen

    def pids(self) -> list[int]:
        """The server's processes: with ``--workers N``, the parent and its workers (measure
        CPU over all of them, as nginx's master and workers are measured)."""
        return [self.proc.pid, *children(self.proc.pid)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def peak_rss_mib(self) -> float:
        total = 0.0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(data_dir: Path, env: dict[str, str] | None = None, host: str | None = None,
          workers: int = 1) -> Server:
    """``workers`` > 1: ``opendps serve --workers N`` (info.json appears once all listen)."""
    host = host or free_loopback()
    full_env = dict(os.environ, OPENDPS_DATA_DIR=str(data_dir), OPENDPS_BIND=host,
                    OPENDPS_DPS_HOST_NAME=host, OPENDPS_HUB_HOST_NAMES=host,
                    OPENDPS_WORKERS=str(workers))
    full_env.update(env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "opendps", "serve"], env=full_env,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((data_dir / "server.log").read_text())
        if (data_dir / "info.json").exists():
            try:
                socket.create_connection((host, 443), timeout=0.5).close()
                socket.create_connection((host, 8883), timeout=0.5).close()
                return Server(host, data_dir, proc)
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (nginx workers), from /proc."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(p) for p in text)
    return out


def wait_listening(host: str, ports: tuple[int, ...], proc: subprocess.Popen,
                   log: Path, timeout: float = 30) -> None:
    """Until every port accepts a connection; raise with the log if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited:\n{log.read_text(errors='replace')}")
        try:
            for port in ports:
                socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{proc.args[0]} did not listen on {host}:{ports}")
