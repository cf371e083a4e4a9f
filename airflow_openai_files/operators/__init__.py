"""Operators of the provider (imported lazily by nothing heavy: DAG files parse fast)."""

from __future__ import annotations

from airflow_openai_files.operators.base import OpenAIBaseOperatorMixin
from airflow_openai_files.operators.batches import OpenAIBatchOperator
from airflow_openai_files.operators.files import (
    OpenAIDeleteFileOperator,
    OpenAIDownloadFileOperator,
    OpenAIFilesCleanupOperator,
    OpenAIUploadFileOperator,
)
from airflow_openai_files.operators.fine_tuning import OpenAIFineTuningJobOperator
from airflow_openai_files.operators.vector_stores import OpenAIVectorStoreSyncOperator
from airflow_openai_files.validation import parse_duration

__all__ = [
    "OpenAIBaseOperatorMixin",
    "OpenAIBatchOperator",
    "OpenAIDeleteFileOperator",
    "OpenAIDownloadFileOperator",
    "OpenAIFilesCleanupOperator",
    "OpenAIFineTuningJobOperator",
    "OpenAIUploadFileOperator",
    "OpenAIVectorStoreSyncOperator",
    "parse_duration",
]
