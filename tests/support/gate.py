"""A TCP proxy on loopback that can freeze a transfer half-way, so a crash lands mid-transfer every time.

A loopback transfer of a few hundred MiB takes well under a second: polling for "is it running
yet?" and then killing would hit the middle only by luck. The gate forwards bytes both ways and,
once armed for a direction, holds every connection after it has passed ``after_bytes`` bytes in that
direction (requests: "up", responses: "down"). The test waits until a connection is held, which
proves the transfer is in progress (the client has written or received that much), injects its
crash, then ``release()`` lets held connections go on (or notices that their client is gone).
Small JSON calls stay far below ``after_bytes`` and are never held.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

CHUNK = 1024 * 1024


class Gate:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gate", daemon=True)
        self._armed: tuple[str, int] | None = None
        self._held = threading.Event()
        self._lock = threading.Lock()
        self._open: asyncio.Event | None = None
        self._server: asyncio.base_events.Server | None = None

    # ---- control (from the test's thread) ---------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def arm(self, direction: str, after_bytes: int) -> None:
        assert direction in ("up", "down")
        with self._lock:
            self._held.clear()
            self._armed = (direction, after_bytes)
            asyncio.run_coroutine_threadsafe(self._close_gate(), self._loop).result(timeout=10)

    def wait_held(self, timeout: float) -> bool:
        """True once a connection is held at the gate (the transfer is in progress)."""
        return self._held.wait(timeout)

    def release(self) -> None:
        """Disarm, and let every held connection continue."""
        with self._lock:
            self._armed = None
            self._held.clear()
            asyncio.run_coroutine_threadsafe(self._open_gate(), self._loop).result(timeout=10)

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # ---- the proxy (in the gate's event loop) ------------------------------------------------------
    async def _start(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close_gate(self) -> None:
        assert self._open is not None
        self._open.clear()

    async def _open_gate(self) -> None:
        assert self._open is not None
        self._open.set()

    async def _handle(self, client_reader: Any, client_writer: Any) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pump(client_reader, up_writer, "up"),
            self._pump(up_reader, client_writer, "down"),
            return_exceptions=True,
        )
        for writer in (client_writer, up_writer):
            with contextlib.suppress(Exception):
                writer.close()

    async def _pump(self, reader: Any, writer: Any, direction: str) -> None:
        assert self._open is not None
        passed = 0
        try:
            while True:
                armed = self._armed
                if armed is not None and armed[0] == direction and passed >= armed[1] and not self._open.is_set():
                    self._held.set()
                    await self._open.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
                passed += len(data)
        finally:
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()
            if direction == "down":
                with contextlib.suppress(Exception):
                    writer.close()
