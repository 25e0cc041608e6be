"""WAL checkpoints on a thread of their own, off the event loop.

SQLite's automatic checkpoint runs inside the COMMIT that crosses the WAL threshold, so one
registration in every few hundred paid 5–20 ms copying pages into the database file while
the loop served nobody (SQLite runs on the loop's thread, see ``loop_sqlite``). Here a
thread with its own connection runs PASSIVE checkpoints (they never block readers or
writers) every ``every`` commits, at most once per ``min_interval`` seconds; the sqlite3
module releases the GIL while SQLite works, so the loop keeps serving meanwhile. The loop's
connections keep an automatic checkpoint only as a backstop (``BACKSTOP_PAGES``), for a
thread that cannot keep up.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading

log = logging.getLogger("opendps.store")
BACKSTOP_PAGES = 20_000  # ~80 MB of WAL before a commit checkpoints by itself after all


class WalCheckpointer:
    def __init__(self, path: str, *, every: int = 200, min_interval: float = 0.05,
                 idle_interval: float = 2.0) -> None:
        self.path = path
        self.every = every
        self.min_interval = min_interval
        self.idle_interval = idle_interval
        self.checkpoints = 0  # completed, for tests and curiosity
        self._commits = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def committed(self) -> None:
        """Called after every COMMIT on the loop: a counter, and a wake-up now and then."""
        self._commits += 1
        if self._commits >= self.every:
            self._commits = 0
            if self._thread is None:
                self._start()
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="opendps-wal-checkpoint",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.is_set():
                woken = self._wake.wait(self.idle_interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                if woken or self._commits:
                    self._checkpoint(conn)
                    self._stop.wait(self.min_interval)  # a floor between two checkpoints
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # busy: another process's checkpoint; next time
            log.debug("WAL checkpoint skipped: %s", exc)
