"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_openai_files import __version__
from airflow_openai_files._connection_form import conn_fields, provider_ui_field_behaviour
from airflow_openai_files.limits import CONN_TYPE


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-openai-files",
        "name": "OpenAI Files",
        "description": "Upload, wait for, download and clean up files of the OpenAI Files API, and run "
        "fine-tuning jobs from a training file to a fine-tuned model and its metrics.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "OpenAI Files",
                "external-doc-url": "https://platform.openai.com/docs/api-reference/files",
                "tags": ["software"],
            },
            {
                "integration-name": "OpenAI Fine-tuning",
                "external-doc-url": "https://platform.openai.com/docs/api-reference/fine-tuning",
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
