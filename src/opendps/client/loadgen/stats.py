"""Counting for the load generator: latencies, errors by code, and CPU/RSS of both ends.

Server figures are read from ``/proc`` (not asked of the server), so the same meter measures
opendps, the floor server, nginx and Mosquitto alike; a ratio between two of them is only fair
when both were read the same way.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import resource
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of every CPU, from ``/proc/stat``; (0, 0) where unreadable.
    Steal is time the hypervisor gave to other guests: a run with much of it measured a
    slower machine than it seems."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def raise_fd_limit() -> int:
    """Thousands of sockets in one process need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class ProcessMeter:
    """CPU seconds and memory of a set of processes (nginx: master and workers), by pid.

    An empty meter reads zeros, so a load against a remote server still runs."""

    def __init__(self, pids: list[int] | None = None) -> None:
        self.pids = [p for p in (pids or []) if Path(f"/proc/{p}").exists()]

    def __bool__(self) -> bool:
        return bool(self.pids)

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                text = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def _status_kib(self, name: str) -> int:
        total = 0
        for pid in self.pids:
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                if line.startswith(name):
                    total += int(line.split()[1])
        return total

    def peak_rss_mib(self) -> float:
        """VmHWM: the high-water mark since the process started (not resettable)."""
        return self._status_kib("VmHWM:") / 1024

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS:") / 1024


def error_code(exc: BaseException) -> str:
    """A short, stable label for the error table: the DPS errorCode, else the HTTP status,
    else the exception's kind (an errno name for socket errors)."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(code)
    status = getattr(exc, "status", None)
    if status:
        return f"http {status}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return f"tls {exc.reason or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


class LoopLag:
    """How late this process's own event loop runs a timer: the part of a measured latency
    that is the load generator's (its GC, its other devices), not the server's."""

    INTERVAL = 0.005

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.INTERVAL
            await asyncio.sleep(self.INTERVAL)
            self.samples.append(max(0.0, loop.time() - due))

    def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        lag = sorted(self.samples)
        return {"client_loop_lag_p99_ms": round(1000 * percentile(lag, 99), 2),
                "client_loop_lag_max_ms": round(1000 * lag[-1], 2) if lag else 0.0}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Recorder:
    """One load run: call ``start``, ``ok``/``fail`` per operation, then ``result``."""

    server: ProcessMeter = field(default_factory=ProcessMeter)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    _wall0: float = 0.0
    _wall1: float = 0.0
    _cpu0: float = 0.0
    _client0: float = 0.0
    _server_cpu: float = 0.0
    _client_cpu: float = 0.0
    _ticks0: tuple[int, int] = (0, 0)
    _steal_pct: float | None = None

    def start(self) -> None:
        # What the load generator built so far (fleet, contexts, imports) lives through the
        # run: out of the collector's full passes, which otherwise paused this loop for tens
        # of ms and showed up as server latency.
        gc.collect()
        gc.freeze()
        self._ticks0 = machine_ticks()
        self._cpu0 = self.server.cpu_seconds()
        self._client0 = client_cpu_seconds()
        self._wall0 = time.perf_counter()

    def stop(self) -> None:
        self._wall1 = time.perf_counter()
        self._server_cpu = self.server.cpu_seconds() - self._cpu0
        self._client_cpu = client_cpu_seconds() - self._client0
        steal, total = (b - a for a, b in zip(self._ticks0, machine_ticks(), strict=True))
        self._steal_pct = round(100 * steal / total, 1) if total > 0 else None
        gc.unfreeze()

    def ok(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def fail(self, exc: BaseException) -> None:
        self.errors[error_code(exc)] += 1

    @property
    def done(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def result(self, unit: str, **extra: Any) -> dict[str, Any]:
        """Figures per successful ``unit`` (registration, message)."""
        wall = max(self._wall1 - self._wall0, 1e-9)
        count = len(self.latencies)
        lat = sorted(self.latencies)
        out: dict[str, Any] = dict(extra)
        out.update({
            "completed": count,
            "errors": dict(self.errors),
            "error_count": sum(self.errors.values()),
            "duration_s": round(wall, 3),
            f"{unit}s_per_s": round(count / wall, 1),
            "p50_ms": round(1000 * percentile(lat, 50), 2),
            "p95_ms": round(1000 * percentile(lat, 95), 2),
            "p99_ms": round(1000 * percentile(lat, 99), 2),
            "client_cpu_s": round(self._client_cpu, 2),
            "machine_steal_pct": self._steal_pct,
            f"client_cpu_ms_per_{unit}": round(1000 * self._client_cpu / count, 3)
            if count else None,
        })
        if self.server:
            out.update({
                "server_cpu_s": round(self._server_cpu, 2),
                f"server_cpu_ms_per_{unit}": round(1000 * self._server_cpu / count, 3)
                if count else None,
                "server_peak_rss_mib": round(self.server.peak_rss_mib(), 1),
            })
        return out
