"""Every error the emulator answers, in the service's shape
``{"error": {"message", "type", "param", "code"}}``.

Messages are the service's own where they are documented or reported (sources in docs/fidelity.md's
Fidelity table); routers and backends raise the constructors below, never a bare message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_openai_files.limits import DOWNLOADABLE_PURPOSES, UPLOAD_PURPOSES


class EmulatorError(Exception):
    """An API error: rendered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class AzureError(EmulatorError):
    """An answer of Azure's gateway, whose body is not OpenAI's four-field error object."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, str(body.get("message") or body.get("error", {}).get("message", "")))
        self._body = body

    def body(self) -> dict[str, Any]:
        return self._body


# ---- Azure OpenAI's gateway (sources in the Fidelity table (docs/fidelity.md)) -------------------------------
def azure_resource_not_found() -> AzureError:
    """A missing ``api-version`` on the versioned routes, or an unknown route."""
    return AzureError(404, {"error": {"code": "404", "message": "Resource not found"}})


def azure_api_version_not_supported() -> AzureError:
    return AzureError(400, {"error": {"code": "BadRequest", "message": "API version not supported"}})


def azure_bad_key() -> AzureError:
    """No credentials, or an ``api-key`` that is not the resource's."""
    return AzureError(
        401,
        {
            "error": {
                "code": "401",
                "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to"
                " provide a valid key for an active subscription and use a correct regional API endpoint for"
                " your resource.",
            }
        },
    )


def azure_bad_token() -> AzureError:
    """An Entra ID bearer token that is not accepted (Azure's gateway answers in its own shape)."""
    return AzureError(
        401,
        {
            "statusCode": 401,
            "message": "Unauthorized. Access token is missing, invalid, audience is incorrect"
            " (https://cognitiveservices.azure.com), or have expired.",
        },
    )


def azure_file_not_processed(file_id: str, status: str, param: str) -> EmulatorError:
    """A batch or job given a file Azure has not processed yet (the wording is the emulator's own)."""
    return EmulatorError(
        400,
        f"The file {_short(file_id, 100)} is not ready for use (status {status!r}): wait until it is 'processed'.",
        param=param,
        code="invalidPayload",
    )


def _short(value: Any, limit: int = 200) -> str:
    return str(value)[:limit]


# ---- authentication -------------------------------------------------------------------------------
def missing_key() -> EmulatorError:
    return EmulatorError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using"
        " Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username)"
        " if you're accessing the API from your browser and are prompted for a username and password."
        " You can obtain an API key from https://platform.openai.com/account/api-keys.",
    )


def incorrect_key(masked: str) -> EmulatorError:
    return EmulatorError(
        401,
        f"Incorrect API key provided: {masked}. You can find your API key at"
        " https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


# ---- request shape --------------------------------------------------------------------------------
def invalid_url(method: str, path: str) -> EmulatorError:
    return EmulatorError(404, f"Invalid URL ({method} {path})")


def bad_json() -> EmulatorError:
    return EmulatorError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your"
        " HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid"
        " JSON.)",
    )


def not_multipart(content_type: str) -> EmulatorError:
    """The service's answer to a non-multipart body on a multipart endpoint (HTTP 415)."""
    return EmulatorError(
        415,
        f"Invalid Content-Type header ({_short(content_type, 100)}), expected multipart/form-data. (HINT: If"
        " you're using curl, you can pass -H 'Content-Type: multipart/form-data')",
    )


def bad_multipart(reason: str) -> EmulatorError:
    return EmulatorError(400, f"Could not parse multipart form: {_short(reason)}")


def field_too_long(name: str) -> EmulatorError:
    return EmulatorError(400, f"Form field '{_short(name, 100)}' is too long.", param=name)


def unrecognized_argument(names: Iterable[str]) -> EmulatorError:
    """An argument the endpoint does not take (the service names them, sorted, plural if several)."""
    listed = sorted(_short(name, 100) for name in names)
    noun = "argument" if len(listed) == 1 else "arguments"
    return EmulatorError(400, f"Unrecognized request {noun} supplied: {', '.join(listed)}")


def missing_key_param(name: str) -> EmulatorError:
    """A required parameter is absent (``missing_key`` is the API key; this is a body field)."""
    return EmulatorError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


def invalid_type(name: str, detail: str = "") -> EmulatorError:
    return EmulatorError(400, f"Invalid type for '{name}'{detail}.", param=name, code="invalid_type")


def invalid_value(name: str, message: str, code: str | None = "invalid_value") -> EmulatorError:
    return EmulatorError(400, message, param=name, code=code)


def integer_out_of_range(name: str, value: int, low: int, high: int) -> EmulatorError:
    if value < low:
        return EmulatorError(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return EmulatorError(
        400,
        f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got {value} instead.",
        param=name,
        code="integer_above_max_value",
    )


def not_an_integer(name: str, raw: str) -> EmulatorError:
    return EmulatorError(
        400, f"Invalid '{name}': expected an integer, got {_short(raw, 50)!r}.", param=name, code="invalid_type"
    )


def bad_purpose(purpose: Any) -> EmulatorError:
    """The service's jsonschema-style answer, also for the purposes only it creates."""
    allowed = ", ".join(repr(p) for p in UPLOAD_PURPOSES)
    return EmulatorError(400, f"{_short(purpose, 100)!r} is not one of [{allowed}] - 'purpose'", param="purpose")


# ---- files ----------------------------------------------------------------------------------------
def no_such_file(file_id: str, param: str = "id") -> EmulatorError:
    return EmulatorError(404, f"No such File object: {_short(file_id)}", param=param)


def bad_cursor(file_id: str) -> EmulatorError:
    return EmulatorError(400, f"No such File object: {_short(file_id)}", param="after")


def download_not_allowed(purpose: str) -> EmulatorError:
    """``GET /files/{id}/content`` of a purpose outside ``DOWNLOADABLE_PURPOSES``."""
    assert purpose not in DOWNLOADABLE_PURPOSES
    return EmulatorError(400, f"Not allowed to download files of purpose: {purpose}")


def file_too_large(limit: int | None = None, api: str | None = None, param: str = "file") -> EmulatorError:
    if api is None:
        return EmulatorError(400, "File is too large.", param=param)
    return EmulatorError(400, f"File is too large for the {api} API: at most {limit} bytes.", param=param)


def wrong_file_format(api: str, param: str) -> EmulatorError:
    return EmulatorError(400, f"Invalid file format for {api} API. Must be .jsonl", param=param)


# ---- uploads --------------------------------------------------------------------------------------
def no_such_upload(upload_id: str) -> EmulatorError:
    return EmulatorError(404, f"No such Upload object: {_short(upload_id)}", param="upload_id")


def upload_not_pending(action: str, status: str) -> EmulatorError:
    return EmulatorError(400, f"Cannot {action} an Upload with status '{status}'.", param="upload_id")


def bad_mime_type(mime_type: str, purpose: str, supported: Iterable[str]) -> EmulatorError:
    listed = ", ".join(repr(m) for m in supported)
    return EmulatorError(
        400,
        f"Invalid value for 'mime_type': {_short(mime_type, 100)!r} is not supported for purpose {purpose!r}."
        f" Supported values are: {listed}.",
        param="mime_type",
        code="invalid_value",
    )


def part_too_large(limit: int) -> EmulatorError:
    return EmulatorError(400, f"Part is too large: at most {limit} bytes.", param="data")


def upload_bytes_out_of_range(limit: int) -> EmulatorError:
    return EmulatorError(400, f"Invalid 'bytes': an Upload holds between 0 and {limit} bytes.", param="bytes")


def parts_mismatch(message: str, param: str = "part_ids") -> EmulatorError:
    return EmulatorError(400, message, param=param)


# ---- fine-tuning jobs -----------------------------------------------------------------------------
def no_such_fine_tuning_job(job_id: str) -> EmulatorError:
    return EmulatorError(
        404, f"Could not find fine-tune: {_short(job_id)}", param="fine_tune_id", code="fine_tune_not_found"
    )


def bad_fine_tuning_cursor(name: str, value: str) -> EmulatorError:
    return EmulatorError(400, f"Invalid 'after': no {name} with id {_short(value)}.", param="after")


def invalid_fine_tuning_file(param: str, file_id: str) -> EmulatorError:
    """A ``training_file`` / ``validation_file`` that does not exist (reported service wording)."""
    return EmulatorError(400, f"invalid {param}: {_short(file_id)}", param=param)


def wrong_fine_tuning_file_purpose(param: str, file_id: str, purpose: str) -> EmulatorError:
    """Not a ``fine-tune`` file (wording chosen by the emulator; see the Fidelity table (docs/fidelity.md))."""
    return EmulatorError(
        400,
        f"Invalid {param}: file {_short(file_id)} has purpose '{_short(purpose, 50)}', but fine-tuning files"
        " must be uploaded with purpose 'fine-tune'.",
        param=param,
        code="invalid_file_purpose",
    )


def fine_tuning_not_cancellable(job_id: str, status: str) -> EmulatorError:
    return EmulatorError(
        400,
        f"Job {_short(job_id)} has already completed with status '{status}' and cannot be cancelled.",
        param="fine_tune_id",
    )


def fine_tuning_wrong_status(action: str, job_id: str, status: str) -> EmulatorError:
    """Pause of a job that is not running, resume of one that is not paused."""
    return EmulatorError(400, f"Cannot {action} job {_short(job_id)} with status '{status}'.", param="fine_tune_id")


def fine_tuning_unavailable(cutoff: str) -> EmulatorError:
    """Job creation after OpenAI's self-serve fine-tuning cutoff (HTTP 403, as reported: "permission
    denied"; the body's wording and code are the emulator's, see the Fidelity table (docs/fidelity.md))."""
    return EmulatorError(
        403,
        "Creating fine-tuning jobs is no longer available: OpenAI's self-serve fine-tuning platform stopped"
        f" accepting new jobs on {cutoff}. Existing fine-tuned models remain available for inference until"
        " their base models are deprecated.",
        code="fine_tuning_unavailable",
    )


# ---- admin ----------------------------------------------------------------------------------------
def bad_admin_request(detail: str) -> EmulatorError:
    return EmulatorError(400, _short(detail, 500))


# ---- batches --------------------------------------------------------------------------------------
def no_such_batch(batch_id: str) -> EmulatorError:
    return EmulatorError(404, f"No such Batch object: {_short(batch_id)}", param="batch_id")


def bad_batch_cursor(batch_id: str) -> EmulatorError:
    return EmulatorError(400, f"No such Batch object: {_short(batch_id)}", param="after")


def batch_input_not_batch_purpose(file_id: str, purpose: str) -> EmulatorError:
    return EmulatorError(
        400,
        f"The input file {_short(file_id)} has purpose {_short(purpose, 50)!r}; a batch needs a file of purpose"
        " 'batch'.",
        param="input_file_id",
        code="invalid_value",
    )


def unsupported_value(name: str, value: Any, supported: Iterable[str]) -> EmulatorError:
    listed = ", ".join(repr(v) for v in supported)
    return EmulatorError(
        400,
        f"Invalid value: {_short(value, 100)!r}. Supported values are: {listed}.",
        param=name,
        code="invalid_value",
    )


def too_many_properties(name: str, limit: int, got: int) -> EmulatorError:
    return EmulatorError(
        400,
        f"Invalid '{name}': too many properties. Expected an object with at most {limit} properties, but got an"
        f" object with {got} properties instead.",
        param=name,
        code="object_above_max_properties",
    )


def string_too_long(name: str, limit: int, got: int) -> EmulatorError:
    return EmulatorError(
        400,
        f"Invalid '{name}': string too long. Expected a string with maximum length {limit}, but got a string"
        f" with length {got} instead.",
        param=name,
        code="string_above_max_length",
    )


def batch_not_cancellable(status: str) -> EmulatorError:
    return EmulatorError(400, f"Cannot cancel a batch with status '{status}'.", param="batch_id")
