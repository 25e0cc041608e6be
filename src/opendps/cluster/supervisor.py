"""``opendps serve --workers N``: one asyncio loop uses one core, so N worker processes share
the listening ports (SO_REUSEPORT: the kernel spreads new connections across them) and behave
as members of one service: the store is shared, and the cross-process bus (unix datagrams on
SQLite, LISTEN/NOTIFY on PostgreSQL) carries desired-property pushes, "connected elsewhere"
drops, cache invalidation and hub changes, so any worker answers any poll.

The parent serves nothing itself. It migrates and bootstraps once (workers never race on a
first start), checks that the ports are free (SO_REUSEPORT would otherwise let a second server
share them silently), starts the workers (``python -m opendps serve`` with ``OPENDPS_WORKER``,
see ``worker.py``), and waits until each says it listens before it writes ``info.json``.
SIGTERM/SIGINT are forwarded and waited for. A worker that fails during start fails the whole
start (its own message, such as a port in use, is on stderr). A worker that dies later is
restarted, at most ``MAX_RESTARTS`` times within ``RESTART_WINDOW`` seconds; past that every
worker is stopped and the parent exits non-zero, so a crash loop reaches the supervisor above
(systemd) instead of spinning here. Workers watch a lifeline pipe, so ``kill -9`` of the
parent stops them too."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from ..config import Settings
from .worker import ENV, WorkerSlot

log = logging.getLogger("opendps.workers")
START_TIMEOUT = 60.0  # seconds for every worker to listen
STOP_TIMEOUT = 20.0  # seconds for workers to close after SIGTERM, then SIGKILL
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
RESTART_DELAY = 0.5
TICK = 0.1
SUN_PATH_MAX = 107  # bytes in a unix socket path (Linux sun_path, minus the NUL)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    ready_fd: int  # read end; closed once the worker reported ready
    ready: bool = False


@dataclass
class _State:
    stopping: int = 0  # the signal that asked us to stop
    restarts: list[float] = field(default_factory=list)


def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` workers until a signal; the exit status for the shell.
    Raises ``server.PortInUse`` before starting anything when a port is taken."""
    from .. import server

    check_ports(settings)
    instance = asyncio.run(server.prepare(settings))
    run_dir = _run_dir(settings.data_dir)
    lifeline_r, lifeline_w = os.pipe()  # workers read; end-of-file = the parent is gone
    state = _State()
    previous = {sig: signal.signal(sig, _stopper(state)) for sig in (signal.SIGINT,
                                                                    signal.SIGTERM)}
    workers: dict[int, _Worker] = {}
    try:
        for i in range(settings.workers):
            workers[i] = _spawn(settings, i, run_dir, lifeline_r)
        if not _await_ready(workers, state):
            return 0 if state.stopping else 1
        server.write_info(instance)
        print(server.describe(instance), flush=True)
        print(f"  workers           {settings.workers} processes sharing the ports "
              f"(pids {', '.join(str(w.proc.pid) for w in workers.values())})", flush=True)
        return _watch(settings, workers, state, run_dir, lifeline_r)
    finally:
        _stop_all(workers)
        for worker in workers.values():
            _close(worker)
        os.close(lifeline_r)
        os.close(lifeline_w)
        shutil.rmtree(run_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_ports(settings: Settings) -> None:
    """Bind each address and port once without SO_REUSEPORT: a taken port fails here with
    today's message, where the workers' SO_REUSEPORT bind could join another server's."""
    from .. import server

    for host in settings.bind_addresses:
        for what, port in (("HTTPS", settings.https_port), ("MQTT", settings.mqtt_port)):
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                           flags=socket.AI_PASSIVE)
                for family, kind, proto, _name, address in infos:
                    with socket.socket(family, kind, proto) as sock:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        sock.bind(address)
            except OSError as exc:
                if not isinstance(exc, socket.gaierror) and exc.errno not in (
                        errno.EACCES, errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                    raise
                raise server.port_error(what, host, port, exc) from None


def _run_dir(data_dir: Path) -> Path:
    """A private directory for the workers' bus sockets: ``<data_dir>/run/<pid>`` when its
    paths fit a unix socket address, else a fresh directory under the system temp dir.
    Directories left by a parent that was killed are removed."""
    base = data_dir / "run"
    base.mkdir(mode=0o700, exist_ok=True)
    for stale in base.iterdir():
        if stale.name.isdigit() and not _alive(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    path = base / str(os.getpid())
    if len(os.fsencode(path / "w999.sock")) <= SUN_PATH_MAX:
        path.mkdir(mode=0o700, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="opendps-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stopper(state: _State) -> Callable[[int, FrameType | None], None]:
    def stop(signum: int, _frame: FrameType | None) -> None:
        state.stopping = state.stopping or signum  # the loops notice within TICK

    return stop


def _spawn(settings: Settings, index: int, run_dir: Path, lifeline_r: int) -> _Worker:
    ready_r, ready_w = os.pipe()
    slot = WorkerSlot(index, settings.workers, run_dir, ready_fd=ready_w,
                      lifeline_fd=lifeline_r)
    env = dict(os.environ)
    env[ENV] = slot.encode(settings)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "opendps", "serve"], env=env,
                                pass_fds=(ready_w, lifeline_r))
    finally:
        os.close(ready_w)
    return _Worker(index, proc, ready_r)


def _await_ready(workers: dict[int, _Worker], state: _State) -> bool:
    """True once every worker listens; False if one exits first, time runs out or a signal
    arrives (the caller then stops the rest)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not all(w.ready for w in workers.values()):
        if state.stopping:
            return False
        for worker in workers.values():
            code = worker.proc.poll()
            if code is not None and not worker.ready:
                log.error("opendps: worker %d exited during start (status %s)",
                          worker.index, code)
                return False
        if time.monotonic() > deadline:
            log.error("opendps: workers did not start within %.0f s", START_TIMEOUT)
            return False
        _poll_ready(workers, TICK)
    return True


def _poll_ready(workers: dict[int, _Worker], timeout: float) -> None:
    """Wait up to ``timeout`` for ready lines; mark the workers that sent one."""
    waiting = {w.ready_fd: w for w in workers.values() if not w.ready and w.ready_fd >= 0}
    if not waiting:
        time.sleep(timeout)
        return
    try:
        readable, _, _ = select.select(list(waiting), [], [], timeout)
    except InterruptedError:
        return
    for fd in readable:
        worker = waiting[fd]
        if os.read(fd, 64).startswith(b"ready"):
            worker.ready = True
        _close(worker)


def _watch(settings: Settings, workers: dict[int, _Worker], state: _State, run_dir: Path,
           lifeline_r: int) -> int:
    """Serve until a signal (0) or until workers keep dying (1)."""
    while not state.stopping:
        _poll_ready(workers, TICK)
        for index, worker in list(workers.items()):
            code = worker.proc.poll()
            if code is None or state.stopping:
                continue
            now = time.monotonic()
            state.restarts = [t for t in state.restarts if now - t < RESTART_WINDOW]
            if len(state.restarts) >= MAX_RESTARTS:
                log.error("opendps: worker %d exited (status %s); %d restarts within %.0f s, "
                          "stopping", index, code, len(state.restarts), RESTART_WINDOW)
                return 1
            state.restarts.append(now)
            log.warning("opendps: worker %d (pid %d) exited (status %s); restarting it",
                        index, worker.proc.pid, code)
            _close(worker)
            time.sleep(RESTART_DELAY)
            workers[index] = _spawn(settings, index, run_dir, lifeline_r)
    return 0


def _stop_all(workers: dict[int, _Worker]) -> None:
    """SIGTERM every worker still running, wait, then SIGKILL what is left."""
    running = [w.proc for w in workers.values() if w.proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("opendps: worker pid %d did not stop; killing it", proc.pid)
            proc.kill()
            proc.wait()


def _close(worker: _Worker) -> None:
    if worker.ready_fd >= 0:
        os.close(worker.ready_fd)
        worker.ready_fd = -1
