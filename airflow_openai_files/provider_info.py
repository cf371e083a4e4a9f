"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_openai_files import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-openai-files",
        "name": "OpenAI Files",
        "description": "Upload, wait for, download and clean up files of the OpenAI Files API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "OpenAI Files",
                "external-doc-url": "https://platform.openai.com/docs/api-reference/files",
                "tags": ["software"],
            }
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
                "connection-type": "openai_files",
                "hook-class-name": "airflow_openai_files.hooks.OpenAIFilesHook",
                "hook-name": "OpenAI Files",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"host": "Base URL", "password": "API Key"},
                    "placeholders": {"host": "https://api.openai.com/v1", "password": "sk-..."},
                },
                "conn-fields": {
                    "organization": {
                        "label": "Organization",
                        "description": "Sent as OpenAI-Organization (optional).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "project": {
                        "label": "Project",
                        "description": "Sent as OpenAI-Project (optional).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Total time allowed for one request attempt. Default 600.",
                        "schema": {"type": ["number", "null"]},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "description": "Time allowed to open the connection. Default 10.",
                        "schema": {"type": ["number", "null"]},
                    },
                    "verify": {
                        "label": "TLS verification",
                        "description": "true (default), false, or the path of a CA bundle.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "multipart_threshold": {
                        "label": "Uploads API threshold (bytes)",
                        "description": "Larger files go through the Uploads API in parallel parts. Default 536870912.",
                        "schema": {"type": ["integer", "null"]},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries after the first attempt for retryable failures. Default 5.",
                        "schema": {"type": ["integer", "null"]},
                    },
                },
            }
        ],
    }
