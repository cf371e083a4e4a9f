"""SQLite plumbing shared by every backend, and the emulator's clock.

Layout of ``data_dir``: ``emulator.sqlite3`` (metadata of every resource, WAL mode), ``tmp/`` (bodies
being received, renamed into place once complete) and one folder per backend for contents
(``files/<file id>``, ``parts/<upload id>/<part id>``).

Thread safety: each thread gets its own SQLite connection and every write runs under one lock, so
concurrent requests (run in the server's thread pool) never see ``database is locked``.
"""

from __future__ import annotations

import secrets
import sqlite3
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_ALNUM = string.ascii_letters + string.digits
DB_FILENAME = "emulator.sqlite3"


def new_id(prefix: str) -> str:
    """``prefix`` + 24 random letters and digits, the shape of the service's ids."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(24))


class Clock:
    """Wall-clock time plus an offset tests can move forward (expiry, processing delay)."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self.source = source
        self.offset = 0.0

    def now(self) -> float:
        return self.source() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        self.offset += seconds


class Database:
    """Per-thread SQLite connections to one file, a write lock, and the data directory's tmp area."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.tmp_dir = self.data_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp_dir.iterdir():
            stale.unlink(missing_ok=True)
        self.path = self.data_dir / DB_FILENAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._write_lock = threading.RLock()
        self.closed = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self.closed:
                raise sqlite3.ProgrammingError("the emulator store is closed")
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._write_lock:
                self._connections.append(db)
        return db

    def ensure_schema(self, sql: str) -> None:
        """Run a backend's ``CREATE ... IF NOT EXISTS`` script."""
        with self._write_lock:
            self.connection().executescript(sql)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction under the write lock; rolled back on any exception."""
        with self._write_lock:
            db = self.connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def tmp_path(self) -> Path:
        """A fresh path for a body being received (same filesystem as the final place)."""
        return self.tmp_dir / uuid.uuid4().hex

    def clear_tmp(self) -> None:
        for stale in self.tmp_dir.iterdir():
            stale.unlink(missing_ok=True)

    def close(self) -> None:
        self.closed = True
        with self._write_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
