"""The emulator in a child process (``python -m airflow_openai_files.emulator``), its accessors
answered through the HTTP admin API (``/_emulator/...``)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from airflow_openai_files.emulator.runner.handle import EmulatorBase

#: The first line the CLI prints once it listens; it ends with the base URL: http://HOST:PORT/v1, or
#: http://HOST:PORT/openai/v1 in Azure mode.
READY_LINE = "OpenAI Files emulator listening on "
_READY_RE = re.compile(r"^OpenAI Files emulator listening on (http://[^/\s]+)/\S*\s*$")


class EmulatorProcess(EmulatorBase):
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
        cmd += ["--flavor", self.flavor]
        for token in self.ad_tokens:
            cmd += ["--ad-token", token]
        for version in self.api_versions or ():
            cmd += ["--api-version", version]
        cmd.append("--file-status-errors" if self.file_validation == "status" else "--no-file-status-errors")
        for name, value in {**self.limits, **self.batch_settings}.items():
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
        if name == "request_count":
            return self._admin("GET", "requests/count")["count"]
        if name == "add_line_fault":
            return self._admin("POST", "batches/line_faults", args[0])["added"]
        if name == "expire_batch":
            return self._admin("POST", f"batches/{urllib.parse.quote(args[0], safe='')}/expire", {})
        if name == "reset":
            return self._admin("POST", "reset", {})
        paths = {"files": "files", "uploads": "uploads", "request_log": "requests", "pending_faults": "faults"}
        paths["batches"] = "batches"
        paths["vector_stores"] = "vector_stores"
        return self._admin("GET", paths[name])
