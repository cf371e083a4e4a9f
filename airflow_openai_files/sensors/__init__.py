"""Sensors of the provider."""

from __future__ import annotations

from airflow_openai_files.sensors.batches import OpenAIBatchSensor
from airflow_openai_files.sensors.files import OpenAIFileSensor
from airflow_openai_files.sensors.fine_tuning import OpenAIFineTuningJobSensor
from airflow_openai_files.sensors.vector_stores import OpenAIVectorStoreFileBatchSensor

__all__ = [
    "OpenAIBatchSensor",
    "OpenAIFileSensor",
    "OpenAIFineTuningJobSensor",
    "OpenAIVectorStoreFileBatchSensor",
]
