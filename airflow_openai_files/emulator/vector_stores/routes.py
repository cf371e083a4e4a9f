"""``/vector_stores`` routes: stores, their files, file batches and search. Parse strictly, call
:class:`~.backend.VectorStoresBackend`, render. Bodies and bounds follow openai-python's params types."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_openai_files.emulator.batches.routes import check_metadata
from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.parsing import check_known, int_param, read_json, required
from airflow_openai_files.emulator.core.state import EmulatorState
from airflow_openai_files.emulator.vector_stores.backend import VectorStoresBackend
from airflow_openai_files.limits import (
    ATTRIBUTE_KEY_MAX,
    ATTRIBUTE_VALUE_MAX,
    ATTRIBUTES_MAX_PAIRS,
    CHUNK_SIZE_MAX,
    CHUNK_SIZE_MIN,
    FILE_BATCH_MAX_FILES,
    FILTER_COMPARISONS,
    FILTER_COMPOUNDS,
    SEARCH_MAX_RESULTS_DEFAULT,
    SEARCH_MAX_RESULTS_MAX,
    SEARCH_MAX_RESULTS_MIN,
    VECTOR_STORE_EXPIRY_DAYS_MAX,
    VECTOR_STORE_EXPIRY_DAYS_MIN,
    VECTOR_STORE_LIST_LIMIT_DEFAULT,
    VECTOR_STORE_LIST_LIMIT_MAX,
    VECTOR_STORE_NAME_MAX,
)
from airflow_openai_files.resources.vector_stores import FILE_STATUSES

CREATE_FIELDS = ("name", "description", "expires_after", "chunking_strategy", "metadata", "file_ids")
MODIFY_FIELDS = ("name", "expires_after", "metadata")
ATTACH_FIELDS = ("file_id", "attributes", "chunking_strategy")
BATCH_FIELDS = ("file_ids", "files", "attributes", "chunking_strategy")
SEARCH_FIELDS = ("query", "filters", "max_num_results", "ranking_options", "rewrite_query")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_attributes(value: Any, name: str = "attributes") -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.invalid_type(name, ": expected an object")
    if len(value) > ATTRIBUTES_MAX_PAIRS:
        raise errors.too_many_properties(name, ATTRIBUTES_MAX_PAIRS, len(value))
    for key, item in value.items():
        if len(key) > ATTRIBUTE_KEY_MAX:
            raise errors.string_too_long(name, ATTRIBUTE_KEY_MAX, len(key))
        if isinstance(item, str):
            if len(item) > ATTRIBUTE_VALUE_MAX:
                raise errors.string_too_long(f"{name}.{key}", ATTRIBUTE_VALUE_MAX, len(item))
        elif not isinstance(item, (bool, int, float)):
            raise errors.invalid_type(f"{name}.{key}", ": expected a string, a boolean or a number")
    return dict(value)


def check_chunking(value: Any, name: str = "chunking_strategy") -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.invalid_type(name, ": expected an object")
    kind = value.get("type")
    if kind == "auto":
        check_known(value, ("type",))
        return None
    if kind != "static":
        raise errors.unsupported_value(f"{name}.type", kind, ("auto", "static"))
    check_known(value, ("type", "static"))
    static = value.get("static")
    if not isinstance(static, dict):
        raise errors.missing_key_param(f"{name}.static")
    check_known(static, ("max_chunk_size_tokens", "chunk_overlap_tokens"))
    size: Any = static.get("max_chunk_size_tokens")
    overlap: Any = static.get("chunk_overlap_tokens")
    for field, item in (("max_chunk_size_tokens", size), ("chunk_overlap_tokens", overlap)):
        if item is None:
            raise errors.missing_key_param(f"{name}.static.{field}")
        if not _int(item):
            raise errors.invalid_type(f"{name}.static.{field}")
    if not CHUNK_SIZE_MIN <= size <= CHUNK_SIZE_MAX:
        raise errors.integer_out_of_range(f"{name}.static.max_chunk_size_tokens", size, CHUNK_SIZE_MIN, CHUNK_SIZE_MAX)
    if not 0 <= overlap <= size // 2:
        raise errors.invalid_value(
            f"{name}.static.chunk_overlap_tokens",
            f"Invalid '{name}.static.chunk_overlap_tokens': chunk_overlap_tokens must be non-negative and should"
            f" not exceed half of max_chunk_size_tokens ({size // 2}), got {overlap}.",
        )
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def check_store_expiry(value: Any) -> tuple[bool, int | None]:
    """``(given, days)``: ``expires_after`` ``{"anchor": "last_active_at", "days": 1..365}``; null clears it."""
    if value is None:
        return False, None
    if not isinstance(value, dict):
        raise errors.invalid_type("expires_after", ": expected an object")
    check_known(value, ("anchor", "days"))
    if value.get("anchor") != "last_active_at":
        raise errors.unsupported_value("expires_after.anchor", value.get("anchor"), ("last_active_at",))
    days: Any = value.get("days")
    if not _int(days):
        raise errors.invalid_type("expires_after.days")
    if not VECTOR_STORE_EXPIRY_DAYS_MIN <= days <= VECTOR_STORE_EXPIRY_DAYS_MAX:
        raise errors.integer_out_of_range(
            "expires_after.days", days, VECTOR_STORE_EXPIRY_DAYS_MIN, VECTOR_STORE_EXPIRY_DAYS_MAX
        )
    return True, days


def check_filter(value: Any, name: str = "filters") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid_type(name, ": expected an object")
    kind = value.get("type")
    if kind in FILTER_COMPOUNDS:
        check_known(value, ("type", "filters"))
        items = value.get("filters")
        if not isinstance(items, list) or not items:
            raise errors.invalid_type(f"{name}.filters", ": expected a non-empty array")
        for index, item in enumerate(items):
            check_filter(item, f"{name}.filters[{index}]")
        return value
    if kind not in FILTER_COMPARISONS:
        raise errors.unsupported_value(f"{name}.type", kind, FILTER_COMPARISONS + FILTER_COMPOUNDS)
    check_known(value, ("type", "key", "value"))
    required(value, "key", str)
    if "value" not in value:
        raise errors.missing_key_param(f"{name}.value")
    return value


def _list_params(request: Request) -> dict[str, Any]:
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.unsupported_value("order", order, ("asc", "desc"))
    limit = int_param(query.get("limit"), "limit", VECTOR_STORE_LIST_LIMIT_DEFAULT, 1, VECTOR_STORE_LIST_LIMIT_MAX)
    return {"limit": limit, "order": order, "after": query.get("after"), "before": query.get("before")}


def _status_filter(request: Request) -> str | None:
    status = request.query_params.get("filter")
    if status is not None and status not in FILE_STATUSES:
        raise errors.unsupported_value("filter", status, FILE_STATUSES)
    return status


def _page(data: list[dict[str, Any]], has_more: bool) -> Response:
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


def router(state: EmulatorState) -> APIRouter:
    stores: VectorStoresBackend = state.backend("vector_stores")
    api = APIRouter(prefix=state.config.api_prefix + "/vector_stores")

    # ---- stores ---------------------------------------------------------------------------------------
    @api.post("")
    async def create_store(request: Request) -> Response:
        body = await read_json(request, allowed=CREATE_FIELDS)
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > VECTOR_STORE_NAME_MAX):
            raise errors.invalid_type("name", f": expected a string of at most {VECTOR_STORE_NAME_MAX} characters")
        file_ids = body.get("file_ids") or []
        if not isinstance(file_ids, list) or not all(isinstance(i, str) for i in file_ids):
            raise errors.invalid_type("file_ids", ": expected an array of strings")
        if len(file_ids) > FILE_BATCH_MAX_FILES:
            raise errors.invalid_value(
                "file_ids", f"Invalid 'file_ids': at most {FILE_BATCH_MAX_FILES} files, got {len(file_ids)}."
            )
        _, days = check_store_expiry(body.get("expires_after"))
        created = await run_in_threadpool(
            stores.create_store,
            name=name,
            metadata=check_metadata(body.get("metadata")),
            expires_days=days,
            file_ids=file_ids,
            chunking=check_chunking(body.get("chunking_strategy")),
        )
        return JSONResponse(created)

    @api.get("")
    def list_stores(request: Request) -> Response:
        return _page(*stores.list_stores(**_list_params(request)))

    @api.get("/{store_id}")
    def retrieve_store(store_id: str) -> Response:
        return JSONResponse(stores.get_store(store_id))

    @api.post("/{store_id}")
    async def modify_store(store_id: str, request: Request) -> Response:
        body = await read_json(request, allowed=MODIFY_FIELDS)
        changes: dict[str, Any] = {}
        if "name" in body:
            if body["name"] is not None and not isinstance(body["name"], str):
                raise errors.invalid_type("name")
            changes["name"] = body["name"]
        if "metadata" in body:
            changes["metadata"] = check_metadata(body["metadata"])
        if "expires_after" in body:
            changes["expires_days"] = check_store_expiry(body["expires_after"])[1]
        return JSONResponse(await run_in_threadpool(stores.modify_store, store_id, changes))

    @api.delete("/{store_id}")
    def delete_store(store_id: str) -> Response:
        return JSONResponse(stores.delete_store(store_id))

    @api.post("/{store_id}/search")
    async def search(store_id: str, request: Request) -> Response:
        body = await read_json(request, allowed=SEARCH_FIELDS)
        query = body.get("query")
        if query is None:
            raise errors.missing_key_param("query")
        queries = [query] if isinstance(query, str) else query
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise errors.invalid_type("query", ": expected a string or an array of strings")
        filters = body.get("filters")
        if filters is not None:
            check_filter(filters)
        max_results: Any = body.get("max_num_results", SEARCH_MAX_RESULTS_DEFAULT)
        if not _int(max_results):
            raise errors.invalid_type("max_num_results")
        if not SEARCH_MAX_RESULTS_MIN <= max_results <= SEARCH_MAX_RESULTS_MAX:
            raise errors.integer_out_of_range(
                "max_num_results", max_results, SEARCH_MAX_RESULTS_MIN, SEARCH_MAX_RESULTS_MAX
            )
        data = await run_in_threadpool(stores.search, store_id, queries, filters, max_results)
        return JSONResponse(
            {
                "object": "vector_store.search_results.page",
                "search_query": queries,
                "data": data,
                "has_more": False,
                "next_page": None,
            }
        )

    # ---- files -----------------------------------------------------------------------------------------
    @api.post("/{store_id}/files")
    async def attach_file(store_id: str, request: Request) -> Response:
        body = await read_json(request, allowed=ATTACH_FIELDS)
        file_id = required(body, "file_id", str)
        attributes = check_attributes(body.get("attributes"))
        chunking = check_chunking(body.get("chunking_strategy"))
        return JSONResponse(await run_in_threadpool(stores.attach_file, store_id, file_id, attributes, chunking))

    @api.get("/{store_id}/files")
    def list_files(store_id: str, request: Request) -> Response:
        data, has_more = stores.list_files(store_id, status=_status_filter(request), **_list_params(request))
        return _page(data, has_more)

    @api.get("/{store_id}/files/{file_id}")
    def retrieve_file(store_id: str, file_id: str) -> Response:
        return JSONResponse(stores.get_file(store_id, file_id))

    @api.post("/{store_id}/files/{file_id}")
    async def update_file(store_id: str, file_id: str, request: Request) -> Response:
        body = await read_json(request, allowed=("attributes",))
        if "attributes" not in body:
            raise errors.missing_key_param("attributes")
        attributes = check_attributes(body["attributes"])
        return JSONResponse(await run_in_threadpool(stores.update_file, store_id, file_id, attributes))

    @api.delete("/{store_id}/files/{file_id}")
    def detach_file(store_id: str, file_id: str) -> Response:
        return JSONResponse(stores.detach_file(store_id, file_id))

    @api.get("/{store_id}/files/{file_id}/content")
    def file_content(store_id: str, file_id: str) -> Response:
        data = stores.file_content(store_id, file_id)
        return JSONResponse(
            {"object": "vector_store.file_content.page", "data": data, "has_more": False, "next_page": None}
        )

    # ---- file batches ------------------------------------------------------------------------------------
    @api.post("/{store_id}/file_batches")
    async def create_batch(store_id: str, request: Request) -> Response:
        body = await read_json(request, allowed=BATCH_FIELDS)
        file_ids, files = body.get("file_ids"), body.get("files")
        if file_ids is not None and files is not None:
            raise errors.invalid_value("files", "'file_ids' and 'files' are mutually exclusive; send one of them.")
        entries: list[dict[str, Any]]
        if files is not None:
            if not isinstance(files, list):
                raise errors.invalid_type("files", ": expected an array")
            entries = []
            for index, item in enumerate(files):
                if not isinstance(item, dict):
                    raise errors.invalid_type(f"files[{index}]", ": expected an object")
                check_known(item, ATTACH_FIELDS)
                entries.append(
                    {
                        "file_id": required(item, "file_id", str),
                        "attributes": check_attributes(item.get("attributes"), f"files[{index}].attributes"),
                        "chunking_strategy": check_chunking(
                            item.get("chunking_strategy"), f"files[{index}].chunking_strategy"
                        ),
                    }
                )
        elif file_ids is not None:
            if not isinstance(file_ids, list) or not all(isinstance(i, str) for i in file_ids):
                raise errors.invalid_type("file_ids", ": expected an array of strings")
            attributes = check_attributes(body.get("attributes"))
            chunking = check_chunking(body.get("chunking_strategy"))
            entries = [{"file_id": i, "attributes": attributes, "chunking_strategy": chunking} for i in file_ids]
        else:
            raise errors.missing_key_param("file_ids")
        if not entries:
            raise errors.invalid_value("file_ids", "Invalid 'file_ids': expected at least 1 file.")
        if len(entries) > FILE_BATCH_MAX_FILES:
            name = "files" if files is not None else "file_ids"
            raise errors.invalid_value(
                name,
                f"Invalid '{name}': array too long. Expected an array with maximum length {FILE_BATCH_MAX_FILES},"
                f" but got an array with length {len(entries)} instead.",
                code="array_above_max_length",
            )
        return JSONResponse(await run_in_threadpool(stores.create_batch, store_id, entries))

    @api.get("/{store_id}/file_batches/{batch_id}")
    def retrieve_batch(store_id: str, batch_id: str) -> Response:
        return JSONResponse(stores.get_batch(store_id, batch_id))

    @api.post("/{store_id}/file_batches/{batch_id}/cancel")
    def cancel_batch(store_id: str, batch_id: str) -> Response:
        return JSONResponse(stores.cancel_batch(store_id, batch_id))

    @api.get("/{store_id}/file_batches/{batch_id}/files")
    def list_batch_files(store_id: str, batch_id: str, request: Request) -> Response:
        data, has_more = stores.list_batch_files(
            store_id, batch_id, status=_status_filter(request), **_list_params(request)
        )
        return _page(data, has_more)

    return api
