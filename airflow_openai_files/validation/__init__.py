"""Input checks, run before any request: ids, purposes, expiry, upload sources, durations, JSONL.

Used by the hook, the operators (literal arguments when the DAG is parsed, templated ones when the task
starts) and the emulator. Standard library only at import time (the emulator's subprocess must not import
Airflow). Every refusal is an :class:`~airflow_openai_files.exceptions.OpenAIFilesValidationError`, which
fails the task at once.

- :mod:`.core`: ids, purposes, expiry, durations, cleanup filters, upload sources, the generic JSONL
  check and the streamed line reader;
- :mod:`.batches`: Batch API input files;
- :mod:`.fine_tuning`: fine-tuning files per method.
"""

from __future__ import annotations

from airflow_openai_files.validation.batches import (
    check_batch_endpoint,
    check_batch_file,
    check_completion_window,
    check_max_failed,
)
from airflow_openai_files.validation.core import (
    BATCH_MAX_LINES,
    CHAT_ROLES,
    DEFAULT_MAX_LINE_BYTES,
    FINE_TUNE_MIN_EXAMPLES,
    MATCH_ALL_GLOBS,
    PURPOSES,
    JsonlProblem,
    _fine_tune_format,
    _lines,
    check_cleanup_filters,
    check_expiry,
    check_jsonl,
    check_metadata,
    check_purpose,
    check_source,
    describe,
    is_templated,
    parse_duration,
    timeout_seconds,
    validate_file_id,
    validate_id,
)
from airflow_openai_files.validation.fine_tuning import (
    FINE_TUNE_FORMATS,
    RFT_CONTENT_PARTS,
    check_fine_tune_file,
    check_fine_tuning_method,
)

__all__ = [
    "BATCH_MAX_LINES",
    "CHAT_ROLES",
    "DEFAULT_MAX_LINE_BYTES",
    "FINE_TUNE_FORMATS",
    "FINE_TUNE_MIN_EXAMPLES",
    "MATCH_ALL_GLOBS",
    "PURPOSES",
    "RFT_CONTENT_PARTS",
    "JsonlProblem",
    "_fine_tune_format",
    "_lines",
    "check_batch_endpoint",
    "check_batch_file",
    "check_cleanup_filters",
    "check_completion_window",
    "check_expiry",
    "check_fine_tune_file",
    "check_fine_tuning_method",
    "check_jsonl",
    "check_max_failed",
    "check_metadata",
    "check_purpose",
    "check_source",
    "describe",
    "is_templated",
    "parse_duration",
    "timeout_seconds",
    "validate_file_id",
    "validate_id",
]
