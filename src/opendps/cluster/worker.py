"""What a worker process of ``opendps serve --workers N`` gets from its parent, and how it
answers: one environment variable (``OPENDPS_WORKER``, JSON) carries its index, the worker
count, the run directory for the bus sockets, the parent's exact settings and two inherited
pipe ends: ``ready_fd`` (the worker writes one line once it listens) and ``lifeline_fd`` (the
parent holds the other end; end-of-file means the parent died, even by ``kill -9``, and the
worker stops instead of serving forever as an orphan)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from ..config import Settings

ENV = "OPENDPS_WORKER"


@dataclass(frozen=True)
class WorkerSlot:
    index: int
    count: int
    run_dir: Path
    ready_fd: int = -1
    lifeline_fd: int = -1

    def socket_path(self, index: int) -> Path:
        """Worker ``index``'s bus socket (unix_bus.py)."""
        return self.run_dir / f"w{index}.sock"

    def peer_paths(self) -> list[Path]:
        return [self.socket_path(i) for i in range(self.count) if i != self.index]

    def encode(self, settings: Settings) -> str:
        return json.dumps({"index": self.index, "count": self.count,
                           "run_dir": str(self.run_dir), "ready_fd": self.ready_fd,
                           "lifeline_fd": self.lifeline_fd,
                           "settings": config.to_mapping(settings)})

    def report_ready(self) -> None:
        """Tell the parent this worker listens (once; the pipe is closed afterwards)."""
        if self.ready_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"ready\n")
                os.close(self.ready_fd)

    def watch_parent(self, on_gone: Callable[[], None]) -> None:
        """Call ``on_gone`` when the parent's end of the lifeline closes (the parent exited)."""
        if self.lifeline_fd < 0:
            return
        loop = asyncio.get_running_loop()
        fd = self.lifeline_fd

        def readable() -> None:
            try:
                data = os.read(fd, 64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                on_gone()

        os.set_blocking(fd, False)
        loop.add_reader(fd, readable)


def from_env(env: Mapping[str, str] | None = None) -> tuple[WorkerSlot, Settings] | None:
    """This process's slot and settings when it is a worker, else None."""
    text = (os.environ if env is None else env).get(ENV)
    if not text:
        return None
    data: dict[str, Any] = json.loads(text)
    slot = WorkerSlot(int(data["index"]), int(data["count"]), Path(data["run_dir"]),
                      int(data.get("ready_fd", -1)), int(data.get("lifeline_fd", -1)))
    return slot, config.from_mapping(data["settings"])
