"""The ``openai_files`` connection form, declared once.

``provider_info.get_provider_info()`` (read by Airflow 3.2+) and
``OpenAIFilesHook.get_ui_field_behaviour()`` (asked by Airflow 3.1) both derive from these
definitions. Numeric fields carry a ``minimum`` (the form honours it); ``verify`` is a boolean
switch, and a CA bundle goes in its own ``ca_bundle`` field so a typo is never taken for a path.
"""

from __future__ import annotations

from typing import Any

from airflow_openai_files.limits import AZURE_GA_API_VERSION, AZURE_MULTIPART_THRESHOLD, FLAVORS, MiB

DEFAULT_BASE_URL = "https://api.openai.com/v1"

HIDDEN_FIELDS = ["login", "schema", "port"]
RELABELING = {"host": "Base URL", "password": "API Key"}
PLACEHOLDERS = {"host": DEFAULT_BASE_URL, "password": "sk-..."}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "flavor": {
        "label": "Flavor",
        "description": "openai (default): api.openai.com or a compatible service. azure: Azure OpenAI; the Base "
        "URL is then the resource endpoint https://<resource>.openai.azure.com.",
        "schema": {"type": ["string", "null"], "enum": [*FLAVORS, None], "default": "openai"},
    },
    "api_version": {
        "label": "Azure API version",
        "description": f"Azure only. Empty: the /openai/v1 routes (no api-version). Else the api-version of the "
        f"/openai/... routes, e.g. {AZURE_GA_API_VERSION} (GA).",
        "schema": {"type": ["string", "null"]},
    },
    "azure_ad_token": {
        "label": "Azure Entra ID token",
        "description": "Azure only, instead of the resource key: a Microsoft Entra ID bearer token for "
        "https://cognitiveservices.azure.com/.default. It is not refreshed: prefer 'Use Azure credential'.",
        # "format": "password" makes Airflow treat the field as sensitive (masked in the UI and the API).
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "use_azure_credential": {
        "label": "Use Azure credential",
        "description": "Azure only, instead of the resource key: get Entra ID tokens with DefaultAzureCredential "
        "(managed identity, workload identity, environment, Azure CLI), refreshed before they expire. Needs "
        "the 'azure' extra (azure-identity).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "managed_identity_client_id": {
        "label": "Managed identity client id",
        "description": "Azure with 'Use Azure credential': the client id of a user-assigned managed identity "
        "(optional; default: DefaultAzureCredential's chain).",
        "schema": {"type": ["string", "null"]},
    },
    "organization": {
        "label": "Organization",
        "description": "Sent as OpenAI-Organization (optional; not used on Azure).",
        "schema": {"type": ["string", "null"]},
    },
    "project": {
        "label": "Project",
        "description": "Sent as OpenAI-Project (optional; not used on Azure).",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Total time allowed for one request attempt. Default 600.",
        "schema": {"type": ["number", "null"], "minimum": 1},
    },
    "connect_timeout": {
        "label": "Connect timeout (seconds)",
        "description": "Time allowed to open the connection. Default 10.",
        "schema": {"type": ["number", "null"], "minimum": 1},
    },
    "verify": {
        "label": "Verify TLS certificates",
        "description": "Check the server's certificate (default on). Turn off only for a test server.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "ca_bundle": {
        "label": "CA bundle path",
        "description": "Path of a PEM CA bundle (file or directory) to trust instead of the default ones (optional).",
        "schema": {"type": ["string", "null"]},
    },
    "multipart_threshold": {
        "label": "Uploads API threshold (bytes)",
        "description": f"Larger files go through the Uploads API in parallel parts. Default {512 * MiB} "
        f"({AZURE_MULTIPART_THRESHOLD} on Azure, whose POST /files fails above about 150 MB).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries after the first attempt for retryable failures. Default 5.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
}

#: The Base URL hint, repeated in every Base URL error (the form has no description slot for ``host``).
HOST_DESCRIPTION = (
    "Base URL with scheme and the /v1 path, e.g. https://api.openai.com/v1 (the default when empty) or "
    "http://127.0.0.1:8089/v1 for the local emulator."
)

#: The same hint for Azure connections.
AZURE_HOST_DESCRIPTION = (
    "For the 'azure' flavor the Base URL is the resource endpoint, e.g. https://my-resource.openai.azure.com "
    "(no /openai or /v1 path: the extra 'api_version' chooses the route style)."
)


def provider_ui_field_behaviour() -> dict[str, Any]:
    """The ``ui-field-behaviour`` block of provider info (dash-separated keys)."""
    return {"hidden-fields": list(HIDDEN_FIELDS), "relabeling": dict(RELABELING), "placeholders": dict(PLACEHOLDERS)}


def hook_ui_field_behaviour() -> dict[str, Any]:
    """The same form for ``get_ui_field_behaviour`` (underscore keys, as the hook API names them)."""
    return {"hidden_fields": list(HIDDEN_FIELDS), "relabeling": dict(RELABELING), "placeholders": dict(PLACEHOLDERS)}


def conn_fields() -> dict[str, dict[str, Any]]:
    """A copy of the extra fields (callers may not change the one definition)."""
    return {name: {**spec, "schema": dict(spec["schema"])} for name, spec in CONN_FIELDS.items()}


def azure_placeholders() -> dict[str, str]:
    """Examples shown in docs/connection.md for an Azure connection."""
    return {"host": "https://my-resource.openai.azure.com", "api_version": AZURE_GA_API_VERSION}
