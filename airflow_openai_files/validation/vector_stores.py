"""Vector store inputs, checked before any request: attributes, chunking strategies, expiry, file batches,
search filters and page sizes. Bounds come from :mod:`airflow_openai_files.limits` (sources there).

Standard library only at import time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_openai_files import limits

if TYPE_CHECKING:
    from airflow_openai_files.exceptions import OpenAIFilesValidationError


def _invalid(message: str) -> OpenAIFilesValidationError:
    # Imported on use: the emulator imports this module and must not load Airflow.
    from airflow_openai_files.exceptions import OpenAIFilesValidationError

    return OpenAIFilesValidationError(message)


def check_attributes(attributes: Any, *, reserved: int = 0, what: str = "attributes") -> dict[str, Any] | None:
    """At most 16 pairs (minus ``reserved``), keys of 1..64 characters, values strings <= 512, booleans or numbers."""
    if attributes is None:
        return None
    if not isinstance(attributes, dict):
        raise _invalid(f"{what} must be a dict, got {type(attributes).__name__}")
    room = limits.ATTRIBUTES_MAX_PAIRS - reserved
    if len(attributes) > room:
        extra = f" ({reserved} are used by the provider)" if reserved else ""
        raise _invalid(f"{what} has {len(attributes)} pairs; at most {room} are allowed{extra}")
    for key, value in attributes.items():
        if not isinstance(key, str) or not key or len(key) > limits.ATTRIBUTE_KEY_MAX:
            raise _invalid(f"{what} key {key!r} must be a string of 1 to {limits.ATTRIBUTE_KEY_MAX} characters")
        if isinstance(value, str):
            if len(value) > limits.ATTRIBUTE_VALUE_MAX:
                raise _invalid(
                    f"{what}[{key!r}] has {len(value)} characters; at most {limits.ATTRIBUTE_VALUE_MAX} are allowed"
                )
        elif isinstance(value, bool):
            pass
        elif isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise _invalid(f"{what}[{key!r}] must be a finite number, got {value!r}")
        else:
            raise _invalid(f"{what}[{key!r}] must be a string, a boolean or a number, got {type(value).__name__}")
    return dict(attributes)


def check_chunking_strategy(strategy: Any) -> dict[str, Any] | None:
    """``{"type": "auto"}`` or ``{"type": "static", "static": {"max_chunk_size_tokens", "chunk_overlap_tokens"}}``."""
    if strategy is None:
        return None
    if not isinstance(strategy, dict):
        raise _invalid(f"chunking_strategy must be a dict, got {type(strategy).__name__}")
    kind = strategy.get("type")
    if kind == "auto":
        if set(strategy) != {"type"}:
            raise _invalid(f"chunking_strategy of type 'auto' takes no other key, got {sorted(strategy)}")
        return {"type": "auto"}
    if kind != "static":
        raise _invalid(f"chunking_strategy type must be 'auto' or 'static', got {kind!r}")
    static = strategy.get("static")
    if set(strategy) != {"type", "static"} or not isinstance(static, dict):
        raise _invalid("chunking_strategy of type 'static' needs exactly a 'static' dict besides 'type'")
    size: Any = static.get("max_chunk_size_tokens")
    overlap: Any = static.get("chunk_overlap_tokens")
    if set(static) != {"max_chunk_size_tokens", "chunk_overlap_tokens"}:
        raise _invalid("chunking_strategy.static needs max_chunk_size_tokens and chunk_overlap_tokens, nothing else")
    for name, value in (("max_chunk_size_tokens", size), ("chunk_overlap_tokens", overlap)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(f"chunking_strategy.static.{name} must be an integer, got {value!r}")
    if not limits.CHUNK_SIZE_MIN <= size <= limits.CHUNK_SIZE_MAX:
        raise _invalid(
            f"max_chunk_size_tokens must be from {limits.CHUNK_SIZE_MIN} to {limits.CHUNK_SIZE_MAX}, got {size}"
        )
    if not 0 <= overlap <= size // 2:
        raise _invalid(
            f"chunk_overlap_tokens must be from 0 to half of max_chunk_size_tokens ({size // 2}), got {overlap}"
        )
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def check_store_expiry(expires_after: Any) -> dict[str, Any] | None:
    """``expires_after`` of a store: a number of days (1..365), or ``{"anchor": "last_active_at", "days": n}``."""
    if expires_after is None:
        return None
    if isinstance(expires_after, int) and not isinstance(expires_after, bool):
        expires_after = {"anchor": "last_active_at", "days": expires_after}
    if not isinstance(expires_after, dict) or set(expires_after) != {"anchor", "days"}:
        raise _invalid(f"expires_after must be a number of days or {{'anchor', 'days'}}, got {expires_after!r}")
    if expires_after["anchor"] not in limits.VECTOR_STORE_EXPIRY_ANCHORS:
        raise _invalid(f"expires_after anchor must be 'last_active_at', got {expires_after['anchor']!r}")
    days = expires_after["days"]
    low, high = limits.VECTOR_STORE_EXPIRY_DAYS_MIN, limits.VECTOR_STORE_EXPIRY_DAYS_MAX
    if not isinstance(days, int) or isinstance(days, bool) or not low <= days <= high:
        raise _invalid(f"expires_after days must be an integer from {low} to {high}, got {days!r}")
    return {"anchor": "last_active_at", "days": days}


def check_batch_size(count: int) -> int:
    """A file batch holds 1..2,000 files."""
    if not 1 <= count <= limits.FILE_BATCH_MAX_FILES:
        raise _invalid(f"A file batch holds 1 to {limits.FILE_BATCH_MAX_FILES} files, got {count}")
    return count


def check_page_size(page_size: Any) -> int | None:
    """``limit`` of the vector store lists: 1..100, or None for the service's default (20)."""
    if page_size is None:
        return None
    high = limits.VECTOR_STORE_LIST_LIMIT_MAX
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= high:
        raise _invalid(f"page_size must be an integer from 1 to {high}, got {page_size!r}")
    return page_size


def check_status_filter(status: Any) -> str | None:
    from airflow_openai_files.resources.vector_stores import FILE_STATUSES

    if status is not None and status not in FILE_STATUSES:
        raise _invalid(f"status filter must be one of {', '.join(FILE_STATUSES)}, got {status!r}")
    return status


def check_filters(filters: Any, *, where: str = "filters") -> dict[str, Any] | None:
    """A ``ComparisonFilter`` (``key``, ``type`` in eq/ne/gt/gte/lt/lte/in/nin, ``value``) or a ``CompoundFilter``
    (``type`` and/or, ``filters``), nested."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise _invalid(f"{where} must be a dict, got {type(filters).__name__}")
    kind = filters.get("type")
    if kind in limits.FILTER_COMPOUNDS:
        items = filters.get("filters")
        if set(filters) != {"type", "filters"} or not isinstance(items, list) or not items:
            raise _invalid(f"{where}: a compound filter needs 'type' and a non-empty 'filters' list")
        for index, item in enumerate(items):
            check_filters(item, where=f"{where}.filters[{index}]")
        return filters
    if kind not in limits.FILTER_COMPARISONS:
        allowed = ", ".join(limits.FILTER_COMPARISONS + limits.FILTER_COMPOUNDS)
        raise _invalid(f"{where}: type must be one of {allowed}, got {kind!r}")
    if set(filters) != {"type", "key", "value"} or not isinstance(filters.get("key"), str):
        raise _invalid(f"{where}: a comparison filter needs exactly 'type', 'key' (a string) and 'value'")
    value = filters["value"]
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
            raise _invalid(f"{where}: '{kind}' needs a list of strings or numbers, got {value!r}")
    elif not isinstance(value, (str, int, float, bool)):
        raise _invalid(f"{where}: value must be a string, a number or a boolean, got {value!r}")
    return filters


def check_max_num_results(value: Any) -> int | None:
    if value is None:
        return None
    low, high = limits.SEARCH_MAX_RESULTS_MIN, limits.SEARCH_MAX_RESULTS_MAX
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"max_num_results must be an integer from {low} to {high}, got {value!r}")
    return value


def _file_id(value: Any) -> str:
    from airflow_openai_files.validation.core import validate_file_id

    return validate_file_id(value)


def check_list_params(page_size: int | None, order: str | None, status: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if check_page_size(page_size) is not None:
        params["limit"] = page_size
    if order is not None:
        if order not in ("asc", "desc"):
            raise _invalid(f"order must be 'asc' or 'desc', got {order!r}")
        params["order"] = order
    if check_status_filter(status) is not None:
        params["filter"] = status
    return params


def check_batch_entries(file_ids: list[str] | None, files: list[dict[str, Any]] | None) -> tuple[str, list[Any]]:
    """``("file_ids", ids)`` or ``("files", entries)``: exactly one, 1..2,000 items, each checked."""
    if (file_ids is None) == (files is None):
        raise _invalid("Give exactly one of file_ids and files for a file batch")
    if file_ids is not None:
        check_batch_size(len(file_ids))
        return "file_ids", [_file_id(file_id) for file_id in file_ids]
    assert files is not None
    check_batch_size(len(files))
    entries = []
    for entry in files:
        if (
            not isinstance(entry, dict)
            or "file_id" not in entry
            or set(entry) - {"file_id", "attributes", "chunking_strategy"}
        ):
            raise _invalid(
                f"A file batch entry is a dict with file_id and optional attributes / chunking_strategy, got {entry!r}"
            )
        item: dict[str, Any] = {"file_id": _file_id(entry["file_id"])}
        if entry.get("attributes") is not None:
            item["attributes"] = check_attributes(entry["attributes"])
        if entry.get("chunking_strategy") is not None:
            item["chunking_strategy"] = check_chunking_strategy(entry["chunking_strategy"])
        entries.append(item)
    return "files", entries
