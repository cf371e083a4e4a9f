"""Run the emulator: in a background thread of this process (:class:`Emulator`) or as a
subprocess (:class:`EmulatorProcess`), both with the same constructor and admin methods."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_openai_files.emulator.store import FILE_ID_RE

DEFAULT_API_KEY = "sk-emulator"
READY_LINE = "OpenAI Files emulator listening on "
_READY_RE = re.compile(r"^OpenAI Files emulator listening on (http://\S+)/v1\s*$")


def _keys(api_key: str | Sequence[str] | None) -> tuple[str, ...]:
    if api_key is None:
        return ()
    if isinstance(api_key, str):
        return (api_key,)
    return tuple(api_key)


class _EmulatorBase:
    """Shared lifecycle: data directory (a temporary one, removed on stop, when none is given)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        api_key: str | Sequence[str] | None = None,
        processing_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_file_bytes: int | None = None,
        max_part_bytes: int | None = None,
        log_level: str = "warning",
    ) -> None:
        self.api_keys = _keys(api_key)
        self.processing_delay = processing_delay
        self.host = host
        self.port = port
        self.max_file_bytes = max_file_bytes
        self.max_part_bytes = max_part_bytes
        self.log_level = log_level
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self._temp_dir: str | None = None
        self.data_dir: Path | None = self._given_data_dir
        self.url: str | None = None

    @property
    def api_key(self) -> str:
        """The key clients should send (any non-empty key works when none was configured)."""
        return self.api_keys[0] if self.api_keys else DEFAULT_API_KEY

    @property
    def base_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the emulator is not running")
        return f"{self.url}/v1"

    def _prepare_data_dir(self) -> Path:
        if self._given_data_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="openai-files-emulator-")
            self.data_dir = Path(self._temp_dir)
        else:
            self.data_dir = self._given_data_dir
            self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def _cleanup_data_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def content_path(self, file_id: str) -> Path:
        """Where the content of a stored file lives (hash big files without loading them)."""
        if self.data_dir is None or not FILE_ID_RE.match(file_id):
            raise KeyError(file_id)
        path = self.data_dir / "files" / file_id
        if not path.exists() or file_id not in {f["id"] for f in self.files()}:
            raise KeyError(file_id)
        return path

    def content(self, file_id: str) -> bytes:
        return self.content_path(file_id).read_bytes()

    def files(self) -> list[dict[str, Any]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> _EmulatorBase:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Emulator(_EmulatorBase):
    """The emulator served by uvicorn in a background thread of the current process.

    >>> with Emulator() as emu:
    ...     client = openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._state: Any = None

    def start(self) -> Emulator:
        if self._thread is not None:
            return self
        import uvicorn

        from airflow_openai_files.emulator.app import EmulatorConfig, EmulatorState, create_app
        from airflow_openai_files.emulator.store import Store

        data_dir = self._prepare_data_dir()
        config = EmulatorConfig(api_keys=self.api_keys)
        if self.max_file_bytes is not None:
            config.max_file_bytes = self.max_file_bytes
        if self.max_part_bytes is not None:
            config.max_part_bytes = self.max_part_bytes
        self._state = EmulatorState(store=Store(data_dir, processing_delay=self.processing_delay), config=config)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(256)
        except OSError:
            sock.close()
            self._state.store.close()
            self._cleanup_data_dir()
            raise
        port = sock.getsockname()[1]
        uv_config = uvicorn.Config(
            create_app(self._state),
            log_config=None,
            log_level=self.log_level,
            access_log=self.log_level in ("debug", "trace", "info"),
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="openai-files-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the OpenAI Files emulator failed to start")
            time.sleep(0.001)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        self.port = port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._state is not None:
            self._state.store.close()
        self._server = self._thread = self._state = None
        self.url = None
        self._cleanup_data_dir()

    def _running_state(self) -> Any:
        if self._state is None:
            raise RuntimeError("the emulator is not running")
        return self._state

    def add_fault(self, **kwargs: Any) -> None:
        """Script a fault for the next ``times`` requests matching ``method`` and ``path``."""
        self._running_state().faults.add(**kwargs)

    def reset(self) -> None:
        """Drop every file, upload, fault and logged request."""
        self._running_state().reset()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward: expiry of files and uploads, processing delay."""
        self._running_state().store.advance_clock(seconds)

    def files(self) -> list[dict[str, Any]]:
        """Every live File, oldest first, as the API would show it (no auth involved)."""
        files: list[dict[str, Any]] = self._running_state().store.all_files()
        return files

    def content_path(self, file_id: str) -> Path:
        try:
            path: Path = self._running_state().store.content_path(file_id)
        except Exception as exc:
            raise KeyError(file_id) from exc
        return path

    def request_log(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every ``/v1`` request; status 0: no response was sent."""
        return list(self._running_state().requests)


class EmulatorProcess(_EmulatorBase):
    """The emulator in a child process (``python -m airflow_openai_files.emulator``); admin
    methods go through the HTTP admin API. ``pid`` is the child's process id."""

    def __init__(self, *args: Any, startup_timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.startup_seconds: float | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the emulator is not running")
        return self.process.pid

    def command(self) -> list[str]:
        assert self.data_dir is not None
        cmd = [
            sys.executable,
            "-m",
            "airflow_openai_files.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--processing-delay",
            str(self.processing_delay),
            "--log-level",
            self.log_level,
        ]
        for key in self.api_keys:
            cmd += ["--api-key", key]
        if self.max_file_bytes is not None:
            cmd += ["--max-file-bytes", str(self.max_file_bytes)]
        if self.max_part_bytes is not None:
            cmd += ["--max-part-bytes", str(self.max_part_bytes)]
        return cmd

    def start(self) -> EmulatorProcess:
        if self.process is not None:
            return self
        self._prepare_data_dir()
        began = time.monotonic()
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, text=True, bufsize=1)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(self.startup_timeout)
        match = _READY_RE.match(line[0]) if line else None
        if match is None:
            self.stop()
            raise RuntimeError(f"the emulator process did not start: {line[0] if line else 'no output'!r}")
        self.startup_seconds = time.monotonic() - began
        self.url = match.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
        self.process = None
        self.url = None
        self._cleanup_data_dir()

    def _admin(self, method: str, path: str, payload: Any = None) -> Any:
        if self.url is None:
            raise RuntimeError("the emulator is not running")
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def add_fault(self, **kwargs: Any) -> None:
        self._admin("POST", "faults", kwargs)

    def reset(self) -> None:
        self._admin("POST", "reset", {})

    def advance_clock(self, seconds: float) -> None:
        self._admin("POST", "clock", {"advance": seconds})

    def files(self) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = self._admin("GET", "files")
        return files

    def request_log(self) -> list[tuple[str, str, int]]:
        return [(str(m), str(p), int(s)) for m, p, s in self._admin("GET", "requests")]
