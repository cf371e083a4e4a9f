"""
Triggers for deferrable sensors: each polls one object through ``OpenAIFilesAsyncHook`` from the triggerer.

Every trigger class of this package is re-exported here, and ``serialize()`` names it by this package
(``airflow_openai_files.triggers.OpenAIFileTrigger``), so the stored classpath does not change when a
module inside the package is renamed.
"""

from __future__ import annotations

from airflow_openai_files.triggers.base import OpenAIPollingTrigger
from airflow_openai_files.triggers.batch_shards import OpenAIBatchShardsTrigger
from airflow_openai_files.triggers.batches import OpenAIBatchTrigger
from airflow_openai_files.triggers.files import OpenAIFileTrigger
from airflow_openai_files.triggers.fine_tuning import OpenAIFineTuningJobTrigger
from airflow_openai_files.triggers.vector_stores import OpenAIVectorStoreFileBatchTrigger

__all__ = [
    "OpenAIBatchShardsTrigger",
    "OpenAIBatchTrigger",
    "OpenAIFileTrigger",
    "OpenAIFineTuningJobTrigger",
    "OpenAIPollingTrigger",
    "OpenAIVectorStoreFileBatchTrigger",
]
