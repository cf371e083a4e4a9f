"""The emulator's search: attribute filters as the service documents them, and a simple lexical ranking.

The service embeds the query and the chunks and ranks by vector similarity (plus an optional re-ranker);
the emulator has no model, so it splits each file's text into chunks of ``max_chunk_size_tokens`` words
and scores a chunk by the share of the query's words it contains (0..1). Deterministic, enough for a
smoke test that what was synced is findable; not a relevance model (Fidelity table).
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from airflow_openai_files.emulator.vector_stores.objects import STATUS_SQL

_WORD = re.compile(r"\w+", re.UNICODE)
#: Chunks returned per file in ``content``.
CHUNKS_PER_RESULT = 3


def _compare(kind: str, have: Any, want: Any) -> bool:
    if kind == "in":
        return have in want
    if kind == "nin":
        return have not in want
    if kind == "eq":
        return bool(have == want)
    if kind == "ne":
        return bool(have != want)
    if have is None or isinstance(have, bool) != isinstance(want, bool):
        return False
    if isinstance(have, str) != isinstance(want, str):
        return False
    try:
        if kind == "gt":
            return bool(have > want)
        if kind == "gte":
            return bool(have >= want)
        if kind == "lt":
            return bool(have < want)
        if kind == "lte":
            return bool(have <= want)
    except TypeError:
        return False
    return False


def matches(filters: dict[str, Any], attributes: dict[str, Any]) -> bool:
    """Whether ``attributes`` pass a comparison or compound (``and`` / ``or``) filter."""
    kind = filters["type"]
    if kind == "and":
        return all(matches(item, attributes) for item in filters["filters"])
    if kind == "or":
        return any(matches(item, attributes) for item in filters["filters"])
    return _compare(kind, attributes.get(filters["key"]), filters["value"])


def _chunks(text: str, size: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + size]) for i in range(0, len(words), max(1, size))]


def rank(
    queries: list[str], candidates: list[tuple[str, str, dict[str, Any], str, int]], max_results: int
) -> list[dict[str, Any]]:
    """Search results, best first: ``(file_id, filename, attributes, text, chunk_size)`` per candidate."""
    terms = {word.lower() for query in queries for word in _WORD.findall(query)}
    if not terms:
        return []
    results: list[dict[str, Any]] = []
    for file_id, filename, attributes, text, size in candidates:
        scored = []
        for chunk in _chunks(text, size):
            words = {word.lower() for word in _WORD.findall(chunk)}
            score = len(terms & words) / len(terms)
            if score > 0:
                scored.append((score, chunk))
        if not scored:
            continue
        scored.sort(key=lambda item: -item[0])
        results.append(
            {
                "file_id": file_id,
                "filename": filename,
                "score": round(scored[0][0], 6),
                "attributes": attributes,
                "content": [{"type": "text", "text": chunk} for _, chunk in scored[:CHUNKS_PER_RESULT]],
            }
        )
    results.sort(key=lambda item: (-item["score"], item["filename"], item["file_id"]))
    return results[:max_results]


def search(
    db: sqlite3.Connection,
    store_id: str,
    queries: list[str],
    filters: dict[str, Any] | None,
    max_results: int,
    now: float,
) -> list[dict[str, Any]]:
    """The store's ``completed`` files that pass ``filters``, ranked for ``queries``."""
    rows = db.execute(
        f"SELECT * FROM vector_store_files WHERE vector_store_id = :store AND {STATUS_SQL} = 'completed'",
        {"store": store_id, "now": now},
    )
    candidates = []
    for row in rows:
        attributes = json.loads(row["attributes"]) if row["attributes"] else {}
        if filters is not None and not matches(filters, attributes):
            continue
        candidates.append((row["file_id"], row["filename"], attributes, row["text"], row["chunk_size"]))
    return rank(queries, candidates, max_results)
