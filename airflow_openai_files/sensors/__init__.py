"""Sensors of the provider: one base (:class:`OpenAIBaseSensor`), and a thin sensor per resource."""

from __future__ import annotations

from airflow_openai_files.sensors.base import OpenAIBaseSensor
from airflow_openai_files.sensors.batches import OpenAIBatchSensor
from airflow_openai_files.sensors.files import OpenAIFileSensor
from airflow_openai_files.sensors.fine_tuning import OpenAIFineTuningJobSensor
from airflow_openai_files.sensors.vector_stores import OpenAIVectorStoreFileBatchSensor

__all__ = [
    "OpenAIBaseSensor",
    "OpenAIBatchSensor",
    "OpenAIFileSensor",
    "OpenAIFineTuningJobSensor",
    "OpenAIVectorStoreFileBatchSensor",
]
