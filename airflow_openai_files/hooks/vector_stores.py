"""The vector store methods of the hooks: stores, their files, file batches and search.

Sync methods (:class:`VectorStoresAPIMixin`, part of ``OpenAIFilesHook``) go through the one transport and
auto-page every list with its page iterator (the official Airflow provider returns only the first page of
a store's files). :class:`AsyncVectorStoresAPIMixin` (part of ``OpenAIFilesAsyncHook``) gives triggers what
they poll. Every argument is checked (:mod:`airflow_openai_files.validation.vector_stores`) before any request.

A vector store costs storage, so ``create_vector_store`` is never sent blind twice: like ``create_batch``
it carries a random token in ``metadata[REQUEST_KEY_METADATA]``, and a retry after a failure that may have
reached the server first looks for a store with that token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_openai_files import limits
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.hooks.base import AsyncAPIMixin
from airflow_openai_files.resources.vector_stores import describe_batch, describe_store
from airflow_openai_files.resume import REQUEST_KEY_METADATA
from airflow_openai_files.transfer.progress import request_id_note
from airflow_openai_files.validation import validate_file_id, validate_id
from airflow_openai_files.validation.vector_stores import (
    check_attributes,
    check_batch_entries,
    check_batch_size,
    check_chunking_strategy,
    check_filters,
    check_list_params,
    check_max_num_results,
    check_store_expiry,
)

if TYPE_CHECKING:
    from airflow_openai_files.client.transport import Transport


def store_path(store_id: str, *rest: str) -> str:
    """``vector_stores/<id>/...``; callers check the ids in ``rest`` (nothing may reach another endpoint)."""
    return "/".join(["vector_stores", validate_id(store_id, "vector store"), *rest])


class VectorStoreFilesAPIMixin:
    """A store's files and file batches over the sync transport, and the plumbing every vector store call shares."""

    if TYPE_CHECKING:
        _transport: Transport
        log: Any

    def _vs_json(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        return self._transport.json(method, path, what=what, **kwargs)

    def _vs_pages(self, path: str, params: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
        """Every item of a vector store list, following ``after`` / ``has_more`` (with the beta header)."""
        query = dict(params)
        while True:
            page = self._vs_json("GET", path, what, params=query)
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            query["after"] = page.get("last_id") or data[-1]["id"]

    # -- files -----------------------------------------------------------------------------------------------
    def attach_vector_store_file(
        self,
        vector_store_id: str,
        file_id: str,
        *,
        attributes: dict[str, Any] | None = None,
        chunking_strategy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Attach an uploaded file to a store (idempotent on the service: the pair is the object's identity)."""
        body: dict[str, Any] = {"file_id": validate_file_id(file_id)}
        if check_attributes(attributes) is not None:
            body["attributes"] = attributes
        strategy = check_chunking_strategy(chunking_strategy)
        if strategy is not None:
            body["chunking_strategy"] = strategy
        attached = self._vs_json(
            "POST", store_path(vector_store_id, "files"), f"Attaching {file_id} to {vector_store_id}", json=body
        )
        self.log.info("Attached %s to vector store %s: %s", file_id, vector_store_id, attached.get("status"))
        return attached

    def get_vector_store_file(self, vector_store_id: str, file_id: str) -> dict[str, Any]:
        path = store_path(vector_store_id, "files", validate_file_id(file_id))
        return self._vs_json("GET", path, f"Retrieving {file_id} of {vector_store_id}")

    def update_vector_store_file(
        self, vector_store_id: str, file_id: str, attributes: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Replace a vector store file's attributes (``None`` clears them)."""
        path = store_path(vector_store_id, "files", validate_file_id(file_id))
        body = {"attributes": check_attributes(attributes)}
        return self._vs_json("POST", path, f"Updating attributes of {file_id} in {vector_store_id}", json=body)

    def detach_vector_store_file(
        self, vector_store_id: str, file_id: str, *, missing_ok: bool = False
    ) -> dict[str, Any]:
        """Remove a file from a store (the file itself stays: delete it with ``delete_file``)."""
        path = store_path(vector_store_id, "files", validate_file_id(file_id))
        try:
            result = self._vs_json("DELETE", path, f"Detaching {file_id} from {vector_store_id}")
        except OpenAIFilesError as err:
            if missing_ok and err.http_status == 404:
                return {"id": file_id, "object": "vector_store.file.deleted", "deleted": False}
            raise
        self.log.info("Detached %s from vector store %s", file_id, vector_store_id)
        return result

    def list_vector_store_files(
        self,
        vector_store_id: str,
        *,
        status: str | None = None,
        page_size: int | None = None,
        order: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every file of a store (all pages), optionally only those with ``status``."""
        params = check_list_params(page_size, order, status)
        return self._vs_pages(store_path(vector_store_id, "files"), params, f"Listing files of {vector_store_id}")

    def get_vector_store_file_content(self, vector_store_id: str, file_id: str) -> str:
        """The parsed text the service indexed for a file (its ``content`` parts joined)."""
        path = store_path(vector_store_id, "files", validate_file_id(file_id), "content")
        page = self._vs_json("GET", path, f"Reading the content of {file_id} in {vector_store_id}")
        return "".join(str(part.get("text") or "") for part in page.get("data") or [])

    # -- file batches ----------------------------------------------------------------------------------------
    def create_vector_store_file_batch(
        self,
        vector_store_id: str,
        *,
        file_ids: list[str] | None = None,
        files: list[dict[str, Any]] | None = None,
        attributes: dict[str, Any] | None = None,
        chunking_strategy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        Attach up to 2,000 files at once: ``file_ids`` (with shared ``attributes`` / ``chunking_strategy``) or
        ``files``, entries ``{"file_id", "attributes", "chunking_strategy"}`` each (the shared ones are refused then).
        """
        key, entries = check_batch_entries(file_ids, files)
        body: dict[str, Any] = {key: entries}
        if key == "files" and (attributes is not None or chunking_strategy is not None):
            raise OpenAIFilesValidationError("With files entries, give attributes and chunking_strategy per entry")
        if check_attributes(attributes) is not None:
            body["attributes"] = attributes
        strategy = check_chunking_strategy(chunking_strategy)
        if strategy is not None:
            body["chunking_strategy"] = strategy
        what = f"Creating a file batch of {len(entries)} files in {vector_store_id}"
        batch = self._vs_json("POST", store_path(vector_store_id, "file_batches"), what, json=body)
        self.log.info("%s", describe_batch(batch))
        return batch

    def get_vector_store_file_batch(self, vector_store_id: str, batch_id: str) -> dict[str, Any]:
        path = store_path(vector_store_id, "file_batches", validate_id(batch_id, "file batch"))
        return self._vs_json("GET", path, f"Retrieving {batch_id} of {vector_store_id}")

    def cancel_vector_store_file_batch(self, vector_store_id: str, batch_id: str) -> dict[str, Any]:
        path = store_path(vector_store_id, "file_batches", validate_id(batch_id, "file batch"), "cancel")
        batch = self._vs_json("POST", path, f"Cancelling {batch_id} of {vector_store_id}")
        self.log.info("Asked to cancel: %s", describe_batch(batch))
        return batch

    def list_vector_store_file_batch_files(
        self,
        vector_store_id: str,
        batch_id: str,
        *,
        status: str | None = None,
        page_size: int | None = None,
        order: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every file of a file batch (all pages), optionally only those with ``status``."""
        path = store_path(vector_store_id, "file_batches", validate_id(batch_id, "file batch"), "files")
        return self._vs_pages(path, check_list_params(page_size, order, status), f"Listing files of {batch_id}")


class VectorStoresAPIMixin(VectorStoreFilesAPIMixin):
    """Vector stores and search over the sync transport (their files and file batches: the base class)."""

    # -- stores ----------------------------------------------------------------------------------------------
    def create_vector_store(
        self,
        name: str | None = None,
        *,
        expires_after: Any = None,
        chunking_strategy: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        file_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """
        Create a vector store and return it.

        :param expires_after: days of inactivity before it expires (1..365), or ``{"anchor": "last_active_at",
            "days": n}``.
        :param chunking_strategy: for ``file_ids`` attached at creation: ``{"type": "auto"}`` or a static one.
        :param metadata: up to 15 string pairs (one pair is the provider's request key).
        """
        from airflow_openai_files.client.transport import may_have_reached_server
        from airflow_openai_files.hooks.batches import check_metadata

        if name is not None and (not isinstance(name, str) or len(name) > limits.VECTOR_STORE_NAME_MAX):
            raise OpenAIFilesValidationError(
                f"name must be a string of at most {limits.VECTOR_STORE_NAME_MAX} characters"
            )
        token = secrets.token_hex(16)
        body: dict[str, Any] = {"metadata": {**check_metadata(metadata, reserved=1), REQUEST_KEY_METADATA: token}}
        if name is not None:
            body["name"] = name
        expiry = check_store_expiry(expires_after)
        if expiry is not None:
            body["expires_after"] = expiry
        if file_ids:
            check_batch_size(len(file_ids))
            body["file_ids"] = [validate_file_id(file_id) for file_id in file_ids]
            strategy = check_chunking_strategy(chunking_strategy)
            if strategy is not None:
                body["chunking_strategy"] = strategy
        what = f"Creating vector store {name!r}"
        transport = self._transport
        failures: list[BaseException] = []
        started = time.time()

        def attempt() -> tuple[dict[str, Any], str | None]:
            if any(may_have_reached_server(failure) for failure in failures):
                found = self.find_vector_store(REQUEST_KEY_METADATA, token, since=started)
                if found is not None:
                    self.log.warning(
                        "Vector store %s was created by an earlier attempt whose answer was lost", found["id"]
                    )
                    return found, None
            try:
                response = transport.send("POST", "vector_stores", what=what, json=body)
            except BaseException as err:
                failures.append(err)
                raise
            return transport.payload(response, what), response.headers.get("x-request-id")

        store, request_id = transport.call(what, attempt)
        self.log.info("Created vector store %s (%r)%s", store.get("id"), name, request_id_note(request_id))
        return store

    def get_vector_store(self, vector_store_id: str) -> dict[str, Any]:
        return self._vs_json("GET", store_path(vector_store_id), f"Retrieving {vector_store_id}")

    def modify_vector_store(
        self,
        vector_store_id: str,
        *,
        name: str | None = None,
        expires_after: Any = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Change the name, the expiry policy or the metadata (only what is given is sent)."""
        from airflow_openai_files.hooks.batches import check_metadata

        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if expires_after is not None:
            body["expires_after"] = check_store_expiry(expires_after)
        if metadata is not None:
            body["metadata"] = check_metadata(metadata)
        store = self._vs_json("POST", store_path(vector_store_id), f"Modifying {vector_store_id}", json=body)
        self.log.info("Modified vector store %s: %s", vector_store_id, ", ".join(sorted(body)) or "nothing")
        return store

    def delete_vector_store(self, vector_store_id: str, *, missing_ok: bool = False) -> dict[str, Any]:
        """Delete a vector store (its files stay in the Files API)."""
        try:
            result = self._vs_json("DELETE", store_path(vector_store_id), f"Deleting {vector_store_id}")
        except OpenAIFilesError as err:
            if missing_ok and err.http_status == 404:
                return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": False}
            raise
        self.log.info("Deleted vector store %s", vector_store_id)
        return result

    def list_vector_stores(self, *, page_size: int | None = None, order: str | None = None) -> Iterator[dict[str, Any]]:
        """Every vector store of the project (newest first unless ``order="asc"``), all pages."""
        return self._vs_pages("vector_stores", check_list_params(page_size, order), "Listing vector stores")

    def find_vector_store(
        self, key: str | None = None, value: str | None = None, *, name: str | None = None, since: float | None = None
    ) -> dict[str, Any] | None:
        """The newest store whose ``metadata[key] == value`` (or named ``name``), or None.

        :param since: unix time; stores created more than ten minutes before it are not looked at.
        """
        horizon = None if since is None else since - 600
        for store in self.list_vector_stores(page_size=limits.VECTOR_STORE_LIST_LIMIT_MAX):
            if horizon is not None and int(store.get("created_at") or 0) < horizon:
                return None
            if key is not None and (store.get("metadata") or {}).get(key) == value:
                return store
            if name is not None and store.get("name") == name:
                return store
        return None

    # -- search ----------------------------------------------------------------------------------------------
    def search_vector_store(
        self,
        vector_store_id: str,
        query: str | list[str],
        *,
        filters: dict[str, Any] | None = None,
        max_num_results: int | None = None,
        rewrite_query: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Search a store; the results (``file_id``, ``filename``, ``score``, ``attributes``, ``content``)."""
        if isinstance(query, str):
            if not query.strip():
                raise OpenAIFilesValidationError("query must not be empty")
        elif not (isinstance(query, list) and query and all(isinstance(q, str) for q in query)):
            raise OpenAIFilesValidationError(f"query must be a string or a list of strings, got {query!r}")
        body: dict[str, Any] = {"query": query}
        if check_filters(filters) is not None:
            body["filters"] = filters
        if check_max_num_results(max_num_results) is not None:
            body["max_num_results"] = max_num_results
        if rewrite_query is not None:
            body["rewrite_query"] = bool(rewrite_query)
        page = self._vs_json("POST", store_path(vector_store_id, "search"), f"Searching {vector_store_id}", json=body)
        results: list[dict[str, Any]] = page.get("data") or []
        self.log.info("Search of %s for %r: %d results", vector_store_id, query, len(results))
        return results


class AsyncVectorStoresAPIMixin(AsyncAPIMixin):
    """What triggers poll: a store, a file batch, a page of a batch's files (``OpenAIFilesAsyncHook`` mixin)."""

    async def get_vector_store(self, vector_store_id: str) -> dict[str, Any]:
        return await self.request_json("GET", store_path(vector_store_id), what=f"Retrieving {vector_store_id}")

    async def get_vector_store_file_batch(self, vector_store_id: str, batch_id: str) -> dict[str, Any]:
        path = store_path(vector_store_id, "file_batches", validate_id(batch_id, "file batch"))
        return await self.request_json("GET", path, what=f"Retrieving {batch_id} of {vector_store_id}")

    async def list_vector_store_files_page(
        self, vector_store_id: str, *, status: str | None = None, after: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """One page of a store's files (``{"data", "has_more", "last_id"}``)."""
        params = check_list_params(limit, None, status)
        if after is not None:
            params["after"] = validate_file_id(after)
        path = store_path(vector_store_id, "files")
        return await self.request_json("GET", path, what=f"Listing files of {vector_store_id}", params=params)


__all__ = [
    "AsyncVectorStoresAPIMixin",
    "VectorStoreFilesAPIMixin",
    "VectorStoresAPIMixin",
    "describe_batch",
    "describe_store",
]
