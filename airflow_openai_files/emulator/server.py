"""Run the emulator: in a background thread of this process (:class:`Emulator`) or as a
subprocess (:class:`EmulatorProcess`), both with the same constructor and the same public
accessors (the process answers them through the admin API)."""

from __future__ import annotations

import base64
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
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_openai_files.limits import CONN_TYPE

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
    """Shared lifecycle (a temporary data directory, removed on stop, when none is given) and the
    public accessors tests use instead of reaching into the emulator's state."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        api_key: str | Sequence[str] | None = None,
        processing_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        fine_tuning_validate_seconds: float | None = None,
        fine_tuning_queue_seconds: float | None = None,
        fine_tuning_train_seconds: float | None = None,
        fine_tuning_available_until: str | None = None,
        organization_name: str | None = None,
        file_validation: str = "none",
        max_file_bytes: int | None = None,
        max_part_bytes: int | None = None,
        max_batch_bytes: int | None = None,
        sync_check_bytes: int | None = None,
        log_level: str = "warning",
    ) -> None:
        self.api_keys = _keys(api_key)
        self.processing_delay = processing_delay
        self.host = host
        self.port = port
        self.file_validation = file_validation
        #: Fine-tuning knobs (EmulatorConfig fields and CLI flags of the same names); None: the default.
        self.fine_tuning: dict[str, Any] = {
            "fine_tuning_validate_seconds": fine_tuning_validate_seconds,
            "fine_tuning_queue_seconds": fine_tuning_queue_seconds,
            "fine_tuning_train_seconds": fine_tuning_train_seconds,
            "fine_tuning_available_until": fine_tuning_available_until,
            "organization_name": organization_name,
        }
        self.limits = {
            "max_file_bytes": max_file_bytes,
            "max_part_bytes": max_part_bytes,
            "max_batch_bytes": max_batch_bytes,
            "sync_check_bytes": sync_check_bytes,
        }
        self.log_level = log_level
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self._temp_dir: str | None = None
        self.data_dir: Path | None = self._given_data_dir
        self.url: str | None = None

    @property
    def max_file_bytes(self) -> int | None:
        return self.limits["max_file_bytes"]

    @property
    def max_part_bytes(self) -> int | None:
        return self.limits["max_part_bytes"]

    @property
    def api_key(self) -> str:
        """The key clients should send (any non-empty key works when none was configured)."""
        return self.api_keys[0] if self.api_keys else DEFAULT_API_KEY

    @property
    def base_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the emulator is not running")
        return f"{self.url}/v1"

    def airflow_connection(self, **extra: Any) -> str:
        """The JSON value of ``AIRFLOW_CONN_<ID>`` pointing a connection at this emulator."""
        value: dict[str, Any] = {"conn_type": CONN_TYPE, "host": self.base_url, "password": self.api_key}
        if extra:
            value["extra"] = extra
        return json.dumps(value)

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

    # ---- accessors (each kind implements _call) ---------------------------------------------------
    def _call(self, name: str, *args: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def files(self) -> list[dict[str, Any]]:
        """Every live File, oldest first, as the API would show it (no auth involved)."""
        files: list[dict[str, Any]] = self._call("files")
        return files

    def file(self, file_id: str) -> dict[str, Any]:
        """One live File as the API shows it; ``KeyError`` if there is none."""
        file: dict[str, Any] = self._call("file", file_id)
        return file

    def content_path(self, file_id: str) -> Path:
        """Where the bytes of a live file are, whatever its purpose (hash big files without loading them)."""
        path: Path = self._call("content_path", file_id)
        return path

    def content(self, file_id: str) -> bytes:
        """The bytes of a live file, whatever its purpose (the API refuses some; tests may look)."""
        return self.content_path(file_id).read_bytes()

    def uploads(self) -> list[dict[str, Any]]:
        """Every Upload, oldest first, as the API shows it."""
        uploads: list[dict[str, Any]] = self._call("uploads")
        return uploads

    def create_service_file(self, purpose: str, filename: str, content: bytes) -> dict[str, Any]:
        """Seed a file as the service would create it (``batch_output``, ``fine-tune-results``, ...)."""
        created: dict[str, Any] = self._call("create_service_file", purpose, filename, content)
        return created

    def fine_tuning_jobs(self) -> list[dict[str, Any]]:
        """Every fine-tuning job, oldest first, as the API shows it now (lifecycle applied)."""
        jobs: list[dict[str, Any]] = self._call("fine_tuning_jobs")
        return jobs

    def request_log(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every API request; status 0: no response was sent."""
        return [(str(m), str(p), int(s)) for m, p, s in self._call("request_log")]

    def now(self) -> float:
        """The emulator's idea of the current time (wall clock plus any ``advance_clock``)."""
        return float(self._call("now"))

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward: expiry of files and uploads, processing delay."""
        self._call("advance_clock", seconds)

    def add_fault(self, **kwargs: Any) -> None:
        """Script a fault for the next ``times`` requests matching ``method`` and ``path``."""
        self._call("add_fault", kwargs)

    def pending_faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._call("pending_faults")
        return faults

    def reset(self) -> None:
        """Drop every file, upload, fault and logged request."""
        self._call("reset")

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

    def _config(self) -> Any:
        from airflow_openai_files.emulator.config import EmulatorConfig

        config = EmulatorConfig(
            api_keys=self.api_keys,
            processing_delay=self.processing_delay,
            file_validation=self.file_validation,  # type: ignore[arg-type]
        )
        for name, value in self.limits.items():
            if value is not None:
                setattr(config, name, value)
        for name, value in self.fine_tuning.items():
            if value is not None:
                setattr(config, name, value)
        config.__post_init__()
        return config

    def start(self) -> Emulator:
        if self._thread is not None:
            return self
        import uvicorn

        from airflow_openai_files.emulator.app import create_app, open_state

        config = self._config()
        data_dir = self._prepare_data_dir()
        self._state = open_state(data_dir, config)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(256)
        except OSError:
            sock.close()
            self._state.close()
            self._state = None
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
            self._state.close()
        self._server = self._thread = self._state = None
        self.url = None
        self._cleanup_data_dir()

    def _call(self, name: str, *args: Any) -> Any:
        from airflow_openai_files.emulator.errors import EmulatorError

        state = self._state
        if state is None:
            raise RuntimeError("the emulator is not running")
        files, uploads = state.backend("files"), state.backend("uploads")
        actions: dict[str, Any] = {
            "files": files.all_files,
            "file": files.get_file,
            "content_path": files.content_path,
            "uploads": uploads.all_uploads,
            "create_service_file": files.create_service_file,
            "request_log": lambda: list(state.requests),
            "now": state.clock.now,
            "advance_clock": state.clock.advance,
            "add_fault": lambda kwargs: state.faults.add(**kwargs),
            "pending_faults": state.faults.pending,
            "reset": state.reset,
            "fine_tuning_jobs": state.backend("fine_tuning").all_jobs,
        }
        try:
            return actions[name](*args)
        except EmulatorError as exc:
            raise KeyError(args[0] if args else name) from exc


class EmulatorProcess(_EmulatorBase):
    """The emulator in a child process (``python -m airflow_openai_files.emulator``); the accessors
    go through the HTTP admin API. ``pid`` is the child's process id."""

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
        cmd = [sys.executable, "-m", "airflow_openai_files.emulator", "--host", self.host, "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir), "--processing-delay", str(self.processing_delay)]
        cmd += ["--log-level", self.log_level]
        for key in self.api_keys:
            cmd += ["--api-key", key]
        if self.file_validation == "status":
            cmd.append("--file-status-errors")
        for name, value in self.limits.items():
            if value is not None:
                cmd += [f"--{name.replace('_', '-')}", str(value)]
        for name, value in self.fine_tuning.items():
            if value is not None:
                cmd += [f"--{name.replace('_', '-')}", str(value)]
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
            f"{self.url}/_emulator/{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def _call(self, name: str, *args: Any) -> Any:
        import urllib.error

        try:
            return self._admin_call(name, *args)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise KeyError(args[0] if args else name) from exc
            raise ValueError(exc.read().decode("utf-8", "replace")) from exc

    def _admin_call(self, name: str, *args: Any) -> Any:
        if name in ("file", "content_path"):
            file = self._admin("GET", f"files/{urllib.parse.quote(args[0], safe='')}")
            return Path(file.pop("content_path")) if name == "content_path" else file
        if name == "create_service_file":
            purpose, filename, content = args
            payload = {"purpose": purpose, "filename": filename, "content_base64": base64.b64encode(content).decode()}
            return self._admin("POST", "service_files", payload)
        if name == "now":
            return self._admin("GET", "clock")["now"]
        if name == "advance_clock":
            return self._admin("POST", "clock", {"advance": args[0]})
        if name == "fine_tuning_jobs":
            return self._admin("GET", "fine_tuning/jobs")
        if name == "add_fault":
            return self._admin("POST", "faults", args[0])
        if name == "reset":
            return self._admin("POST", "reset", {})
        paths = {"files": "files", "uploads": "uploads", "request_log": "requests", "pending_faults": "faults"}
        return self._admin("GET", paths[name])
