"""The emulator's configuration: one dataclass, and the route prefixes in one place.

A new target flavour (e.g. Azure OpenAI's ``/openai`` routes, file-level validation errors) is a
new set of values here, not new branches in the routers: routers take their prefix from
:attr:`EmulatorConfig.api_prefix`, the admin API from :attr:`EmulatorConfig.admin_prefix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from airflow_openai_files.limits import (
    AZURE_GA_API_VERSION,
    EMULATOR_BATCH_FILE_MAX_BYTES,
    EMULATOR_FILE_MAX_BYTES,
    EMULATOR_PART_MAX_BYTES,
    EMULATOR_UPLOAD_MAX_BYTES,
    FLAVORS,
    Flavor,
)

API_PREFIX = "/v1"
ADMIN_PREFIX = "/_emulator"

#: ``"openai"``: the routes under ``/v1``, ``Authorization: Bearer`` auth, OpenAI's statuses and errors.
#: ``"azure"``: Azure OpenAI's data plane, see :mod:`.middleware` (routing and auth) and the files backend.
#: Azure's versioned routes: ``/openai/<resource path>?api-version=<one of api_versions>``.
AZURE_PREFIX = "/openai"
#: Azure's v1 routes: ``/openai/v1/<resource path>``, no api-version needed.
AZURE_V1_PREFIX = "/openai/v1"
#: api-version values the versioned routes accept by default: the GA data-plane versions of the REST
#: reference (2024-02-01, 2024-06-01, 2024-10-21) and the dated previews since 2024-02-15-preview
#: (vector stores, the assistants v2 routes, are served from 2024-05-01-preview on, so an SDK client
#: pinned to any preview Azure documents for them must be answered).
AZURE_API_VERSIONS: tuple[str, ...] = (
    "2024-02-01",
    "2024-06-01",
    AZURE_GA_API_VERSION,
    "2024-02-15-preview",
    "2024-03-01-preview",
    "2024-04-01-preview",
    "2024-05-01-preview",
    "2024-07-01-preview",
    "2024-08-01-preview",
    "2024-09-01-preview",
    "2024-10-01-preview",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-02-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
)
#: What the v1 routes accept as an (optional) api-version (the v1 API's early previews took ``preview``).
AZURE_V1_API_VERSIONS: tuple[str, ...] = ("v1", "preview", "latest")

#: ``"none"``: like OpenAI, files go ``uploaded`` -> ``processed`` and content problems are left to
#: the job that uses the file. ``"status"``: a malformed ``fine-tune`` / ``batch`` file ends
#: ``error`` with ``status_details`` naming the first bad line (targets that still use file status,
#: such as Azure OpenAI).
FileValidation = Literal["none", "status"]
FILE_VALIDATION_MODES: tuple[FileValidation, ...] = ("none", "status")

# Files up to this size are checked inside the request when file_validation="status" (a small
# malformed file is already ``error`` in the create response); larger ones by a background thread.
SYNC_CHECK_BYTES = 8 * 1024 * 1024


def fine_tuning_cutoff_ts(day: str) -> float:
    """``"YYYY-MM-DD"`` as the Unix time of 00:00 UTC that day (ValueError for anything else)."""
    try:
        return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        raise ValueError(f"fine_tuning_available_until must be a date YYYY-MM-DD, got {day!r}") from None


@dataclass
class EmulatorConfig:
    api_keys: tuple[str, ...] = ()
    processing_delay: float = 0.0
    file_validation: FileValidation = "none"
    max_file_bytes: int = EMULATOR_FILE_MAX_BYTES
    max_batch_bytes: int = EMULATOR_BATCH_FILE_MAX_BYTES
    max_part_bytes: int = EMULATOR_PART_MAX_BYTES
    max_upload_bytes: int = EMULATOR_UPLOAD_MAX_BYTES
    sync_check_bytes: int = SYNC_CHECK_BYTES
    # Fine-tuning jobs (emulator/fine_tuning): seconds spent in each phase on the emulator's clock,
    # the organisation named in fine-tuned model names, and the day job creation stops (like
    # OpenAI after its self-serve cutoff; "YYYY-MM-DD", None: never).
    fine_tuning_validate_seconds: float = 0.2
    fine_tuning_queue_seconds: float = 0.2
    fine_tuning_train_seconds: float = 1.0
    fine_tuning_available_until: str | None = None
    organization_name: str = "emulator-org"
    organization_id: str = "org-emulator"
    api_prefix: str = API_PREFIX
    admin_prefix: str = ADMIN_PREFIX
    flavor: Flavor = "openai"
    #: Azure: the api-version values the ``/openai/...`` routes accept.
    api_versions: tuple[str, ...] = AZURE_API_VERSIONS
    #: Azure: Entra ID bearer tokens accepted; empty: any non-empty token (and any configured key).
    bearer_tokens: tuple[str, ...] = ()
    # Batches: how long each state lasts on the emulator's clock (fast by default), and the
    # organisation's enqueued-token limit per model (None: no limit).
    batch_validating_seconds: float = 0.0
    batch_in_progress_seconds: float = 0.0
    batch_seconds_per_request: float = 0.0
    batch_finalizing_seconds: float = 0.0
    batch_cancelling_seconds: float = 0.0
    enqueued_token_limit: int | None = None
    # Vector stores: seconds a newly attached file stays in_progress on the emulator's clock, and the
    # organisation's attach rate (files per minute; None: no limit, the default).
    vector_store_file_seconds: float = 0.1
    vector_store_attach_per_minute: int | None = None

    def __post_init__(self) -> None:
        if self.file_validation not in FILE_VALIDATION_MODES:
            raise ValueError(f"file_validation must be one of {FILE_VALIDATION_MODES}, got {self.file_validation!r}")
        if self.flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, got {self.flavor!r}")
        if self.fine_tuning_available_until is not None:
            fine_tuning_cutoff_ts(self.fine_tuning_available_until)

    @property
    def is_azure(self) -> bool:
        return self.flavor == "azure"

    def fine_tuning_closed(self, now: float) -> bool:
        """True once ``now`` is on or after ``fine_tuning_available_until`` (00:00 UTC)."""
        until = self.fine_tuning_available_until
        return until is not None and now >= fine_tuning_cutoff_ts(until)

    def is_api_path(self, path: str) -> bool:
        return path == self.api_prefix or path.startswith(self.api_prefix + "/")

    def is_admin_path(self, path: str) -> bool:
        return path == self.admin_prefix or path.startswith(self.admin_prefix + "/")
