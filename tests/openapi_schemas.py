"""jsonschema validators for the responses of the Files and Uploads API, built from the OpenAPI
excerpt in ``tests/data/files-openapi.yaml`` (a copy of ``../shared/reference/files-openapi.yaml``,
used first so that a clone elsewhere, as in CI, still finds it).

Deliberate deviations from the spec, each because the service itself behaves so:
- ``OpenAIFile.purpose``: the spec's enum lacks ``evals``, which the service accepts on upload
  and then reports on the File, so ``evals`` is added to the enum.
- ``ListFilesResponse.first_id`` / ``last_id``: typed as strings, but an empty page has no ids;
  the service (and the emulator) send null there, so null is allowed.
- ``Batch``: every property outside ``required`` (``output_file_id``, the per-state timestamps,
  ``errors``, ``model``, ...) is typed non-nullable, but the service sends null until it applies
  (the spec's own examples show ``"failed_at": null``, ``"errors": null``), so null is allowed there;
  ``ListBatchesResponse.first_id`` / ``last_id`` as for files.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_COPY = Path(__file__).resolve().parent / "data" / "files-openapi.yaml"
SPEC_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "files-openapi.yaml"

SCHEMA_NAMES = (
    "OpenAIFile",
    "ListFilesResponse",
    "DeleteFileResponse",
    "Upload",
    "UploadPart",
    "ErrorResponse",
    "Batch",
    "ListBatchesResponse",
)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def spec_path() -> Path:
    return SPEC_COPY if SPEC_COPY.exists() else SPEC_SHARED


@cache
def _components() -> dict[str, Any]:
    spec = yaml.safe_load(spec_path().read_text())
    schemas: dict[str, Any] = copy.deepcopy(spec["components"]["schemas"])
    purpose = schemas["OpenAIFile"]["properties"]["purpose"]
    if "evals" not in purpose["enum"]:
        purpose["enum"].append("evals")
    listing = schemas["ListFilesResponse"]["properties"]
    for key in ("first_id", "last_id"):
        listing[key] = {"anyOf": [listing[key], {"type": "null"}]}
    if "Batch" in schemas:
        batch = schemas["Batch"]
        for key, prop in batch["properties"].items():
            if key not in batch["required"]:
                batch["properties"][key] = _nullable(prop)
        batch["additionalProperties"] = False
        batches = schemas["ListBatchesResponse"]["properties"]
        for key in ("first_id", "last_id"):
            batches[key] = _nullable(batches[key])
    return schemas


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator for ``#/components/schemas/<name>`` (refs resolved in the spec)."""
    root = {"components": {"schemas": _components()}, "$ref": f"#/components/schemas/{name}"}
    cls = jsonschema.Draft202012Validator
    cls.check_schema(root)
    return cls(root, format_checker=cls.FORMAT_CHECKER)


def validate(name: str, payload: Any) -> Any:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` fits the schema; return it."""
    validator(name).validate(payload)
    return payload


def schema_for(method: str, path: str, status: int) -> str | None:
    """Which schema a JSON answer of the Files/Uploads API must match (None: not JSON)."""
    if status >= 400:
        return "ErrorResponse"
    parts = path.rstrip("/").split("/")
    tail = parts[parts.index("v1") + 1 :] if "v1" in parts else parts
    method = method.upper()
    if tail == ["files"]:
        return "ListFilesResponse" if method == "GET" else "OpenAIFile"
    if len(tail) == 2 and tail[0] == "files":
        return "DeleteFileResponse" if method == "DELETE" else "OpenAIFile"
    if len(tail) == 3 and tail[0] == "files" and tail[2] == "content":
        return None
    if tail == ["uploads"] or (len(tail) == 3 and tail[0] == "uploads" and tail[2] in ("complete", "cancel")):
        return "Upload"
    if len(tail) == 3 and tail[0] == "uploads" and tail[2] == "parts":
        return "UploadPart"
    if tail == ["batches"]:
        return "ListBatchesResponse" if method == "GET" else "Batch"
    if tail[:1] == ["batches"] and (len(tail) == 2 or (len(tail) == 3 and tail[2] == "cancel")):
        return "Batch"
    return None


def validate_response(method: str, path: str, status: int, payload: Any) -> str | None:
    """Validate one decoded JSON answer; return the schema name used."""
    name = schema_for(method, path, status)
    if name is not None:
        validate(name, payload)
    return name
