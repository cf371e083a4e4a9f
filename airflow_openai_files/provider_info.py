"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_openai_files import __version__
from airflow_openai_files.client.form import conn_fields, provider_ui_field_behaviour
from airflow_openai_files.limits import CONN_TYPE


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-openai-files",
        "name": "OpenAI Files",
        "description": "Upload, wait for, download and clean up files of the OpenAI Files API; run Batch API jobs "
        "and fine-tuning jobs; keep vector stores in sync with a folder or a bucket; on OpenAI and Azure OpenAI.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "OpenAI Files",
                "external-doc-url": "https://platform.openai.com/docs/api-reference/files",
                "tags": ["software"],
            },
            {
                # OpenAIBatchOperator, OpenAIBatchSensor and OpenAIBatchTrigger live in the operators,
                # sensors and triggers packages declared below (each package re-exports its classes).
                "integration-name": "OpenAI Batch",
                "external-doc-url": "https://platform.openai.com/docs/api-reference/batch",
                "tags": ["software"],
            },
            {
                # OpenAIVectorStoreSyncOperator, OpenAIVectorStoreFileBatchSensor and its trigger: same packages.
                "integration-name": "OpenAI Vector Stores",
                "external-doc-url": "https://platform.openai.com/docs/api-reference/vector-stores",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {"integration-name": "OpenAI Files", "python-modules": ["airflow_openai_files.hooks"]},
        ],
        "operators": [
            {"integration-name": "OpenAI Files", "python-modules": ["airflow_openai_files.operators"]},
        ],
        "sensors": [
            {"integration-name": "OpenAI Files", "python-modules": ["airflow_openai_files.sensors"]},
        ],
        "triggers": [
            {"integration-name": "OpenAI Files", "python-modules": ["airflow_openai_files.triggers"]},
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_openai_files.hooks.OpenAIFilesHook",
                "hook-name": "OpenAI Files",
                "ui-field-behaviour": provider_ui_field_behaviour(),
                "conn-fields": conn_fields(),
            }
        ],
    }
