"""The emulator served by uvicorn in a background thread of the current process."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from airflow_openai_files.emulator.runner.handle import EmulatorBase


class Emulator(EmulatorBase):
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
        from airflow_openai_files.emulator.core.config import EmulatorConfig

        config = EmulatorConfig(
            api_keys=self.api_keys,
            processing_delay=self.processing_delay,
            file_validation=self.file_validation,  # type: ignore[arg-type]
            flavor=self.flavor,  # type: ignore[arg-type]
            bearer_tokens=self.ad_tokens,
        )
        if self.api_versions is not None:
            config.api_versions = self.api_versions
        for name, value in {**self.limits, **self.batch_settings}.items():
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

        from airflow_openai_files.emulator.core.app import create_app, open_state

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
        from airflow_openai_files.emulator.batches.backend import expire_batch
        from airflow_openai_files.emulator.core.errors import EmulatorError

        state = self._state
        if state is None:
            raise RuntimeError("the emulator is not running")
        files, uploads = state.backend("files"), state.backend("uploads")
        actions: dict[str, Any] = {
            "files": files.all_files,
            "file": files.get_file,
            "content_path": files.content_path,
            "uploads": uploads.all_uploads,
            "batches": state.backend("batches").all_batches,
            "vector_stores": state.backend("vector_stores").all_stores,
            "create_service_file": files.create_service_file,
            "request_log": lambda: list(state.requests),
            "request_count": lambda: state.request_count,
            "now": state.clock.now,
            "advance_clock": state.clock.advance,
            "add_fault": lambda kwargs: state.faults.add(**kwargs),
            "pending_faults": state.faults.pending,
            "reset": state.reset,
            "fine_tuning_jobs": state.backend("fine_tuning").all_jobs,
            "add_line_fault": lambda kwargs: state.backend("batches").line_faults.add(**kwargs),
            "expire_batch": lambda batch_id: expire_batch(state.backend("batches"), batch_id),
        }
        try:
            return actions[name](*args)
        except EmulatorError as exc:
            raise KeyError(args[0] if args else name) from exc
