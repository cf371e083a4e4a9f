"""The Batch API methods: :class:`BatchesAPIMixin` (sync: create, retrieve, cancel, list, find by
metadata) and :class:`AsyncBatchesAPIMixin` (triggers: retrieve).

A batch costs money, so ``create_batch`` is never sent blind twice: every create carries a random
token in ``metadata[REQUEST_KEY_METADATA]``, and a retry that follows a failure which may have
reached the server (a dropped connection, a read timeout, a 5xx) first lists the recent batches for
that token. If the lost attempt created the batch, that batch is returned instead of a second one.
The mixin follows the contract described in :mod:`airflow_openai_files.hooks.files`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_openai_files import limits
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks.base import AsyncAPIMixin
from airflow_openai_files.resources import batches
from airflow_openai_files.resume import REQUEST_KEY_METADATA
from airflow_openai_files.transfer.progress import request_id_note
from airflow_openai_files.validation import (
    check_batch_endpoint,
    check_completion_window,
    check_expiry,
    check_metadata,
    validate_file_id,
    validate_id,
)

if TYPE_CHECKING:
    from airflow_openai_files.client.transport import Transport

#: ``GET /batches`` takes ``limit`` from 1 to 100 (API reference).
BATCH_LIST_LIMIT_MAX = 100


def batch_path(batch_id: str, suffix: str = "") -> str:
    """``batches/{batch_id}{suffix}`` once the id is checked (shared by the sync and async mixins)."""
    return f"batches/{validate_id(batch_id, batches.KIND)}{suffix}"


class BatchesAPIMixin:
    """``create_batch``, ``get_batch``, ``cancel_batch``, ``list_batches`` and ``find_batch``."""

    if TYPE_CHECKING:
        _transport: Transport
        log: Any  # LoggingMixin's logger

    def create_batch(
        self,
        input_file_id: str,
        endpoint: str,
        *,
        completion_window: str = "24h",
        metadata: dict[str, str] | None = None,
        output_expires_after_seconds: int | None = None,
    ) -> dict[str, Any]:
        """
        Create a batch from an uploaded ``batch`` file and return the Batch object.

        :param input_file_id: the ``file-...`` id of a file uploaded with purpose ``batch``.
        :param endpoint: one of :data:`~airflow_openai_files.limits.BATCH_ENDPOINTS` (e.g. ``/v1/chat/completions``).
        :param completion_window: ``24h`` (the only window the service offers).
        :param metadata: up to 15 string pairs stored on the batch (one pair is the provider's request key).
        :param output_expires_after_seconds: expire the output and error files this long after creation.
        """
        from airflow_openai_files.client.transport import may_have_reached_server

        validate_file_id(input_file_id)
        check_batch_endpoint(endpoint)
        check_completion_window(completion_window)
        token = secrets.token_hex(16)
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
            "metadata": {**check_metadata(metadata, reserved=1), REQUEST_KEY_METADATA: token},
        }
        expires = check_expiry(output_expires_after_seconds)
        if expires is not None:
            body["output_expires_after"] = {"anchor": "created_at", "seconds": expires}
        what = f"Creating batch from {input_file_id}"
        transport = self._transport
        failures: list[BaseException] = []
        started = time.time()

        def attempt() -> tuple[dict[str, Any], str | None]:
            if any(may_have_reached_server(failure) for failure in failures):
                found = self.find_batch(REQUEST_KEY_METADATA, token, since=started)
                if found is not None:
                    self.log.warning(
                        "Batch %s was created by an earlier attempt whose answer was lost; not creating another",
                        found["id"],
                    )
                    return found, None
            try:
                response = transport.send("POST", "batches", what=what, json=body)
            except BaseException as err:
                failures.append(err)
                raise
            return transport.payload(response, what), response.headers.get("x-request-id")

        batch, request_id = transport.call(what, attempt)
        self.log.info(
            "Created batch %s from %s (endpoint %s, window %s), status %s%s",
            batch.get("id"),
            input_file_id,
            endpoint,
            completion_window,
            batch.get("status"),
            request_id_note(request_id),
        )
        return batch

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """Retrieve a Batch object."""
        return self._transport.json("GET", batch_path(batch_id), what=f"Retrieving {batch_id}")

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Ask the service to cancel a batch (it goes ``cancelling``, then ``cancelled`` with partial results)."""
        response = self._transport.request("POST", batch_path(batch_id, "/cancel"), what=f"Cancelling {batch_id}")
        batch = self._transport.payload(response, f"Cancelling {batch_id}")
        self.log.info(
            "Asked to cancel %s; it is %s%s",
            batch_id,
            batch.get("status"),
            request_id_note(response.headers.get("x-request-id")),
        )
        return batch

    def list_batches(self, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """
        Yield every Batch object of the project, newest first, following ``after`` / ``has_more``.

        :param page_size: batches per request (1..100); the API's default (20) when None.
        """
        if page_size is not None and not (isinstance(page_size, int) and 1 <= page_size <= BATCH_LIST_LIMIT_MAX):
            raise OpenAIFilesValidationError(
                f"page_size must be an integer from 1 to {BATCH_LIST_LIMIT_MAX}, got {page_size!r}"
            )
        params = {"limit": page_size} if page_size else {}
        return self._transport.iter_pages("batches", params, "Listing batches")

    def find_batch(self, key: str, value: str, *, since: float | None = None) -> dict[str, Any] | None:
        """
        The newest batch whose ``metadata[key] == value``, or None.

        :param since: unix time (local clock); stop at batches created before it, less
            :data:`~airflow_openai_files.limits.CLOCK_SKEW_SECONDS`. Without it every page is read.
        """
        horizon = None if since is None else since - limits.CLOCK_SKEW_SECONDS
        for batch in self.list_batches(page_size=BATCH_LIST_LIMIT_MAX):
            if horizon is not None and int(batch.get("created_at") or 0) < horizon:
                return None
            if (batch.get("metadata") or {}).get(key) == value:
                return batch
        return None


class AsyncBatchesAPIMixin(AsyncAPIMixin):
    """``get_batch`` for triggers (``OpenAIFilesAsyncHook``)."""

    async def get_batch(self, batch_id: str) -> dict[str, Any]:
        """Retrieve a Batch object (``GET /batches/{batch_id}``)."""
        return await self.request_json("GET", batch_path(batch_id), what=f"Retrieving {batch_id}")


__all__ = ["AsyncBatchesAPIMixin", "BatchesAPIMixin"]
