"""Helpers of the reliability suite: the distinctive key, end-state snapshots, recorded retry waits,
and a TCP front door that plays the network's faults on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.support.connections import free_port
from tests.support.files import sha256

# Distinctive, so a leak anywhere (logs, errors, reprs, XCom) is found by a plain substring search.
SECRET_KEY = "sk-reliability-DO-NOT-LEAK-7f3c9a1e5b2d4680"
CONN_ID = "openai_files_default"
SEED_CONN_ID = "reliability_seed"


def assert_no_key(*things: Any) -> None:
    """The key appears in none of these (their str, repr and JSON form)."""
    for thing in things:
        for text in (str(thing), repr(thing), json.dumps(thing, default=repr)):
            assert SECRET_KEY not in text, f"the API key leaked in {type(thing).__name__}: {text[:200]}"


@dataclass
class Waits:
    """Replaces ``RetryPolicy.sleep``: records each wait; ``on_wait`` callbacks run at each one."""

    seconds: list[float] = field(default_factory=list)
    on_wait: list[Callable[[float], None]] = field(default_factory=list)
    really_sleep: bool = False

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        for callback in self.on_wait:
            callback(seconds)
        if self.really_sleep:
            time.sleep(seconds)


def tune(hook: OpenAIFilesHook, waits: Waits | None = None, *, base: float = 0.01, cap: float = 0.05) -> Waits:
    """Record (not sleep) the hook's retry waits and shrink its backoff."""
    waits = waits if waits is not None else Waits()
    hook.retry_policy.sleep = waits
    hook.retry_policy.backoff_base = base
    hook.retry_policy.backoff_max = cap
    return waits


def v1_log(emu: Emulator, since: int = 0) -> list[tuple[str, str, int]]:
    """``(method, path, status)`` of the API requests the emulator saw after the first ``since``."""
    return [entry for entry in emu.request_log()[since:] if entry[1].startswith("/v1")]


def stored(emu: Emulator) -> dict[str, str]:
    """``{file id: sha256 of its stored content}`` of every live file."""
    return {item["id"]: sha256(emu.content_path(item["id"])) for item in emu.files()}


def part_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


class FrontDoor:
    """
    A loopback TCP port in front of the emulator that plays network faults, switched between modes:

    - ``refuse()``: nothing listens, so connecting fails at once (ECONNREFUSED);
    - ``blackhole()``: a socket listening with ``backlog=0`` whose queue is filled by idle client
      connections: the kernel drops further SYNs, so connecting times out (a real connect timeout,
      loopback only);
    - ``silent()``: connections are accepted and their requests read, but never answered (read timeout);
    - ``stall(after)``: piped to the emulator, but each connection's answers stop after ``after``
      bytes while the connection stays open (a body that stalls part-way: a read timeout mid-body);
    - ``forward()``: bytes are piped both ways to the emulator.
    """

    def __init__(self, target_port: int, tls: ssl.SSLContext | None = None) -> None:
        self.target_port = target_port
        self.tls = tls  # terminate TLS with this server context before piping
        self.tls_failures: list[str] = []
        self.port = free_port()
        self.mode = "refuse"
        self.stall_after: int | None = None
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._fillers: list[socket.socket] = []
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    def _listen(self, backlog: int) -> socket.socket:
        self._close_listener()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(backlog)
        self._listener = sock
        return sock

    def _close_listener(self) -> None:
        for sock in self._fillers:
            sock.close()
        self._fillers.clear()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def refuse(self) -> None:
        self.mode = "refuse"
        self._close_listener()

    def blackhole(self) -> None:
        self.mode = "blackhole"
        self._listen(0)
        for _ in range(16):  # fill the accept queue until a connection attempt no longer completes
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(filler)
            time.sleep(0.02)
            try:
                filler.getpeername()
            except OSError:
                return
        raise RuntimeError("could not fill the listen backlog")

    def silent(self) -> None:
        self.mode = "silent"
        if self._listener is None or self._fillers:
            self._serve()

    def stall(self, after: int) -> None:
        self.stall_after = after
        self.forward()
        self.mode = "stall"

    def forward(self) -> None:
        self.mode = "forward"
        if self._listener is None or self._fillers:
            self._serve()

    def _serve(self) -> None:
        listener = self._listen(64)
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._handle, args=(conn, self.mode), daemon=True).start()

    def _handle(self, conn: socket.socket, mode: str) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError) as err:
                self.tls_failures.append(repr(err))
                conn.close()
                return
        if mode == "silent":
            self._held.append(conn)
            self._drain(conn)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            conn.close()
            return
        done = threading.Semaphore(0)
        limit = self.stall_after if mode == "stall" else None
        for src, dst, cap in ((conn, upstream, None), (upstream, conn, limit)):
            threading.Thread(target=self._pipe, args=(src, dst, done, cap), daemon=True).start()
        self._close_pair(conn, upstream, done)

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, done: threading.Semaphore, limit: int | None = None) -> None:
        try:
            while data := src.recv(65536):
                if limit is not None:
                    data, limit = data[:limit], max(0, limit - len(data))
                if data:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                with contextlib.suppress(OSError):
                    sock.shutdown(how)
            done.release()

    @staticmethod
    def _close_pair(a: socket.socket, b: socket.socket, done: threading.Semaphore) -> None:
        done.acquire()
        done.acquire()
        a.close()
        b.close()

    def close(self) -> None:
        self._close_listener()
        for conn in self._held:
            conn.close()
        self._held.clear()
