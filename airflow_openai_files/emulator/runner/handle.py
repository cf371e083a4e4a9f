"""What the two ways of running the emulator share: the constructor, a temporary data directory
(removed on stop when none is given), and the public accessors tests use instead of reaching into the
emulator's state. :class:`~airflow_openai_files.emulator.runner.thread.Emulator` answers the accessors from its
in-process state, :class:`~airflow_openai_files.emulator.runner.process.EmulatorProcess` through the admin API."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_openai_files.limits import AZURE_GA_API_VERSION, CONN_TYPE

DEFAULT_API_KEY = "sk-emulator"


def _keys(api_key: str | Sequence[str] | None) -> tuple[str, ...]:
    if api_key is None:
        return ()
    if isinstance(api_key, str):
        return (api_key,)
    return tuple(api_key)


class EmulatorBase:
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
        flavor: str = "openai",
        api_versions: Sequence[str] | None = None,
        ad_tokens: str | Sequence[str] | None = None,
        file_validation: str | None = None,
        fine_tuning_validate_seconds: float | None = None,
        fine_tuning_queue_seconds: float | None = None,
        fine_tuning_train_seconds: float | None = None,
        fine_tuning_available_until: str | None = None,
        organization_name: str | None = None,
        max_file_bytes: int | None = None,
        max_part_bytes: int | None = None,
        max_batch_bytes: int | None = None,
        sync_check_bytes: int | None = None,
        log_level: str = "warning",
        batch_validating_seconds: float | None = None,
        batch_in_progress_seconds: float | None = None,
        batch_seconds_per_request: float | None = None,
        batch_finalizing_seconds: float | None = None,
        batch_cancelling_seconds: float | None = None,
        enqueued_token_limit: int | None = None,
        vector_store_file_seconds: float | None = None,
        vector_store_attach_per_minute: int | None = None,
    ) -> None:
        if flavor not in ("openai", "azure"):
            raise ValueError(f"flavor must be 'openai' or 'azure', got {flavor!r}")
        self.flavor = flavor
        self.api_keys = _keys(api_key)
        #: Azure mode: the Entra ID tokens accepted (any non-empty token when none are given).
        self.ad_tokens = _keys(ad_tokens)
        #: Azure mode: the api-version values the ``/openai/...`` routes accept (None: the defaults).
        self.api_versions = tuple(api_versions) if api_versions is not None else None
        self.processing_delay = processing_delay
        self.host = host
        self.port = port
        # Azure reports content problems on the file (status "error"); OpenAI leaves them to the job.
        self.file_validation = file_validation or ("status" if flavor == "azure" else "none")
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
        #: Batch lifecycle durations and the enqueued-token limit (None: the config's default).
        self.batch_settings: dict[str, Any] = {
            "batch_validating_seconds": batch_validating_seconds,
            "batch_in_progress_seconds": batch_in_progress_seconds,
            "batch_seconds_per_request": batch_seconds_per_request,
            "batch_finalizing_seconds": batch_finalizing_seconds,
            "batch_cancelling_seconds": batch_cancelling_seconds,
            "enqueued_token_limit": enqueued_token_limit,
            "vector_store_file_seconds": vector_store_file_seconds,
            "vector_store_attach_per_minute": vector_store_attach_per_minute,
        }
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
    def is_azure(self) -> bool:
        return self.flavor == "azure"

    @property
    def base_url(self) -> str:
        """OpenAI mode: ``http://HOST:PORT/v1``. Azure mode: the v1 routes, ``http://HOST:PORT/openai/v1``."""
        if self.url is None:
            raise RuntimeError("the emulator is not running")
        return f"{self.url}/openai/v1" if self.is_azure else f"{self.url}/v1"

    @property
    def endpoint(self) -> str:
        """What ``AzureOpenAI(azure_endpoint=...)`` and an Azure connection's host take: ``http://HOST:PORT``."""
        if self.url is None:
            raise RuntimeError("the emulator is not running")
        return self.url

    def airflow_connection(self, **extra: Any) -> str:
        """
        The JSON value of ``AIRFLOW_CONN_<ID>`` pointing a connection at this emulator.

        Azure mode: the endpoint as host, ``flavor: azure``, ``api_version`` 2024-10-21 unless ``extra``
        says otherwise (``api_version=""``: the v1 routes), and the key as password unless ``extra``
        chooses Entra ID (``azure_ad_token`` or ``use_azure_credential``).
        """
        value: dict[str, Any] = {"conn_type": CONN_TYPE, "host": self.base_url, "password": self.api_key}
        if self.is_azure:
            extra = {"flavor": "azure", "api_version": AZURE_GA_API_VERSION, **extra}
            value["host"] = self.endpoint
            if extra.get("azure_ad_token") or extra.get("use_azure_credential"):
                del value["password"]
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

    def batches(self) -> list[dict[str, Any]]:
        """Every Batch, oldest first, as the API shows it (brought up to the emulator's clock)."""
        batches: list[dict[str, Any]] = self._call("batches")
        return batches

    def vector_stores(self) -> list[dict[str, Any]]:
        """Every vector store, oldest first, as the API shows it now (file counts, status, usage)."""
        stores: list[dict[str, Any]] = self._call("vector_stores")
        return stores

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

    def request_count(self) -> int:
        """API requests answered since start or the last :meth:`reset` (admin requests not counted)."""
        return int(self._call("request_count"))

    def now(self) -> float:
        """The emulator's idea of the current time (wall clock plus any ``advance_clock``)."""
        return float(self._call("now"))

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward: expiry of files and uploads, processing delay."""
        self._call("advance_clock", seconds)

    def add_fault(self, **kwargs: Any) -> None:
        """Script a fault for the next ``times`` requests matching ``method`` and ``path``."""
        self._call("add_fault", kwargs)

    def add_line_fault(self, **kwargs: Any) -> dict[str, Any]:
        """Fail chosen lines of batches: ``status`` (429, 500, 400...), ``custom_ids=[...]`` or ``fraction=0.1``,
        each chosen line failing its first ``times`` attempts (default 1); see ``LineFaults``."""
        fault: dict[str, Any] = self._call("add_line_fault", kwargs)
        return fault

    def expire_batch(self, batch_id: str) -> dict[str, Any]:
        """End a running batch now as ``expired`` (answered lines delivered, the rest ``batch_expired`` errors)."""
        batch: dict[str, Any] = self._call("expire_batch", batch_id)
        return batch

    def pending_faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._call("pending_faults")
        return faults

    def reset(self) -> None:
        """Drop every file, upload, batch, job, fault and logged request; the clock goes back to now."""
        self._call("reset")

    def start(self) -> EmulatorBase:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
