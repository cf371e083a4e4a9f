"""The error for a non-2xx answer, built the same way by the sync and the async transport.

Both transports call :func:`answer_error` and nothing else for an HTTP error, so an answer reads the
same on the worker and the triggerer: the retry decision of :func:`~.retry.classify`, final answers
re-typed as :class:`~airflow_openai_files.exceptions.OpenAIFilesRequestError`, and a 404 worded once,
here, as :class:`~airflow_openai_files.exceptions.OpenAIFilesNotFoundError` naming the object of the
path in its resource module's words (``resources.<resource>.not_found_message``). Callers (hooks,
operators, sensors, triggers) never reword a 404 again: they test the class and pass the message on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from airflow_openai_files.client.retry import classify, error_fields
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesNotFoundError, OpenAIFilesRequestError, settle
from airflow_openai_files.resources import batches, files, fine_tuning, vector_stores

NOT_FOUND_WORDING: dict[tuple[str, ...], Callable[[str], str]] = {
    ("files",): files.not_found_message,
    ("batches",): batches.not_found_message,
    ("fine_tuning", "jobs"): fine_tuning.not_found_message,
    ("vector_stores",): vector_stores.not_found_message,
}

_KINDS = {"uploads": "Upload"}


def generic_not_found(collection: str, object_id: str) -> str:
    """``"Upload upload_abc does not exist (HTTP 404)"`` for a collection without its own wording."""
    kind = _KINDS.get(collection) or collection.replace("_", " ").rstrip("s").capitalize()
    return f"{kind} {object_id} does not exist (HTTP 404): check the id and the connection's project"


def not_found_text(path: str) -> str | None:
    """The words for a 404 on ``path`` (``files/file-abc/content``), or None when it names no object."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    if parts and parts[0] == "v1":
        parts = parts[1:]
    for prefix, wording in NOT_FOUND_WORDING.items():
        if tuple(parts[: len(prefix)]) == prefix:
            return wording(parts[len(prefix)]) if len(parts) > len(prefix) else None
    if len(parts) >= 2:
        return generic_not_found(parts[0], parts[1])
    return None


def answer_error(
    status: int, headers: Mapping[str, str], body: bytes | str | None, *, what: str, path: str
) -> OpenAIFilesError:
    """The error to raise for a non-2xx answer to ``path`` (a :class:`RetryableError` when it may heal)."""
    err = settle(classify(status, headers, body, what=what))
    if status != 404 or type(err) is not OpenAIFilesRequestError:
        return err
    text = not_found_text(path)
    if text is None:  # a collection itself is missing: a wrong base URL, deployment or api-version
        return err.reworded(
            f"{err.message} (the service has no {path!r}: check the connection's host and flavor)",
            cls=OpenAIFilesNotFoundError,
        )
    said = str(error_fields(body).get("message") or "no error message")
    return err.reworded(f"{what} failed: {text} (the service said: {said})", cls=OpenAIFilesNotFoundError)
