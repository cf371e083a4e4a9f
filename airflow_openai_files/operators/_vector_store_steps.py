"""The steps of a vector store sync, apart from the operator's Airflow plumbing: the plan (what the store's
recorded hashes say must change), the uploads (reusing what a killed try uploaded), the clean-up of such
uploads, the wait on the worker, and the failed files as the service reports them."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.operators._vector_store_source import TAGGED, SourceFile
from airflow_openai_files.resources import Verdict
from airflow_openai_files.resources.vector_stores import (
    HASH_ATTRIBUTE,
    PATH_ATTRIBUTE,
    RESERVED_ATTRIBUTES,
    TERMINAL_STATUSES,
    describe_store,
    file_counts,
)
from airflow_openai_files.validation.vector_stores import check_attributes, check_chunking_strategy

#: Purpose of the files a vector store reads.
PURPOSE = "assistants"
#: Files uploaded at once (each upload is one request; the hook's transport pools connections).
UPLOAD_CONCURRENCY = 4
#: Seconds of clock skew allowed between the worker and the service when looking back.
CLOCK_SKEW = 600.0
#: How far back a retry looks for a killed try's uploads when neither the DAG run's start nor the task state
#: store says when the run began (bounded: the listing is newest first and stops there).
FALLBACK_WINDOW = 24 * 3600.0
EMPTY_MESSAGE = "The file is empty: not uploaded (the Files API refuses empty files)"


@dataclass
class Plan:
    """What a sync does: files to send (new or changed), vector store files to drop, and the counts."""

    to_send: list[SourceFile] = field(default_factory=list)
    #: Vector store files of changed paths, dropped once the new versions are indexed.
    replaced_old: list[str] = field(default_factory=list)
    #: Vector store files whose path left the source (with ``delete_removed``).
    removed_old: list[str] = field(default_factory=list)
    #: Every vector store file id the store holds for a path of ours.
    attached: set[str] = field(default_factory=set)
    #: Unchanged files whose indexing failed with ``server_error`` (the service's fault): attached again, same file.
    reattach: list[tuple[SourceFile, str]] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    local_failed: list[dict[str, Any]] = field(default_factory=list)


def store_files_by_path(hook: Any, store_id: str) -> dict[str, list[dict[str, Any]]]:
    """The store's files that carry the path attribute, by path (several for a path a killed try left)."""
    by_path: dict[str, list[dict[str, Any]]] = {}
    for item in hook.list_vector_store_files(store_id, page_size=100):
        path = (item.get("attributes") or {}).get(PATH_ATTRIBUTE)
        if isinstance(path, str):
            by_path.setdefault(path, []).append(item)
    return by_path


def make_plan(files: list[SourceFile], by_path: Mapping[str, list[dict[str, Any]]], delete_removed: bool) -> Plan:
    plan = Plan(attached={item["id"] for items in by_path.values() for item in items})
    for f in files:
        have = by_path.get(f.path, [])
        same = [item for item in have if (item.get("attributes") or {}).get(HASH_ATTRIBUTE) == f.sha256]
        if same:
            plan.unchanged += 1
            if same[0].get("status") == "failed" and (same[0].get("last_error") or {}).get("code") == "server_error":
                plan.reattach.append((f, same[0]["id"]))
            # Older versions next to the current one (a killed try's leftovers) go.
            plan.replaced_old += [item["id"] for item in have if item is not same[0]]
            continue
        if f.size == 0:
            plan.local_failed.append(
                {"path": f.path, "file_id": None, "code": "invalid_file", "message": EMPTY_MESSAGE}
            )
            continue
        plan.to_send.append(f)
        plan.added += 0 if have else 1
        plan.replaced_old += [item["id"] for item in have]
    if delete_removed:
        wanted = {f.path for f in files}
        gone = [path for path in by_path if path not in wanted]
        plan.removed = len(gone)
        plan.removed_old = [item["id"] for path in gone for item in by_path[path]]
    return plan


#: Upload names recorded per task state key: 13 characters each, so a key stays under the metastore backend's
#: default value limit of 64 KiB (``[state_store] max_value_storage_bytes``) even for a sync of thousands of files.
RECORDED_PER_KEY = 4000


def upload_mark(upload_name: str) -> str:
    """What the task state store keeps of an upload name: 12 hex of its SHA-256 (the name itself can be long)."""
    return hashlib.sha256(upload_name.encode()).hexdigest()[:12]


def recorded_uploads(record: Any) -> set[str]:
    """The :func:`upload_mark` of every name an earlier try of this task instance was about to upload."""
    marks: set[str] = set()
    for index in range(int(record.get("uploads", 0) or 0)):
        marks.update(str(record.get(f"uploads.{index}", "")).split())
    return marks


def record_uploads(record: Any, marks: set[str]) -> None:
    """Record ``marks`` before uploading (chunks first, then their count: a torn write loses nothing recorded)."""
    ordered = sorted(marks)
    chunks = [ordered[i : i + RECORDED_PER_KEY] for i in range(0, len(ordered), RECORDED_PER_KEY)]
    for index, chunk in enumerate(chunks):
        record.set(f"uploads.{index}", " ".join(chunk))
    record.set("uploads", len(chunks))


def forget_uploads(record: Any) -> None:
    for index in range(int(record.get("uploads", 0) or 0)):
        record.delete(f"uploads.{index}")
    record.delete("uploads")


def retry_since(context: Any, record: Any, log: Any) -> float | None:
    """Where a retry starts looking for a killed try's uploads (unix time), None on a first try.

    The DAG run's start (:func:`~airflow_openai_files.resume.retry_window`); when the retry cannot read it,
    the time the first try of this task instance recorded in the task state store (Airflow 3.3+); else
    :data:`FALLBACK_WINDOW` back from now, so a retry still finds them rather than uploading everything again.
    """
    from airflow_openai_files import resume

    if resume.try_number(context) <= 1:
        return None
    since = resume.retry_window(context)
    if since is not None:
        return since
    recorded = record.get("started")
    if isinstance(recorded, (int, float)):
        log.info("The DAG run's start is unknown: looking for earlier uploads since try 1 began (task state)")
        return float(recorded)
    log.warning(
        "The DAG run's start is unknown and no task state records try 1: looking for earlier uploads in the"
        " last %.0f hours",
        FALLBACK_WINDOW / 3600,
    )
    return time.time() - FALLBACK_WINDOW


def earlier_uploads(hook: Any, log: Any, since: float | None) -> dict[tuple[str, int], dict[str, Any]]:
    """Files a killed try of this run uploaded: ``(tagged name, size) -> File`` (the newest wins).

    :param since: ``resume.retry_window(context)``: None on a first try (nothing to find).
    """
    if since is None:
        return {}
    horizon = since - CLOCK_SKEW
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for item in hook.list_files(purpose=PURPOSE):
        if int(item.get("created_at") or 0) < horizon:
            break  # newest first: the rest is older still
        if TAGGED.match(str(item.get("filename") or "")):
            found.setdefault((item["filename"], int(item.get("bytes") or 0)), item)
    log.info("Retry: %d tagged files uploaded since the run started are candidates for reuse", len(found))
    return found


def upload_files(
    hook: Any, log: Any, to_send: list[SourceFile], earlier: Mapping[tuple[str, int], dict[str, Any]]
) -> tuple[dict[str, str], int]:
    """``{path: file id}`` for every file to send (reusing a killed try's upload), and the bytes sent."""
    uploaded: dict[str, str] = {}
    pending = []
    for f in to_send:
        found = earlier.get((f.upload_name, f.size))
        if found is not None:
            uploaded[f.path] = found["id"]
        else:
            pending.append(f)
    if uploaded:
        log.info("Reusing %d files a killed try uploaded", len(uploaded))
    sent = 0
    lock = threading.Lock()
    hook.get_conn()  # build the transport before the threads share it

    def send(f: SourceFile) -> None:
        nonlocal sent
        created = hook.upload_file(f.location, PURPOSE, filename=f.upload_name, validate=False)
        with lock:
            uploaded[f.path] = created["id"]
            sent += f.size

    with ThreadPoolExecutor(max_workers=UPLOAD_CONCURRENCY, thread_name_prefix="vs-upload") as pool:
        for future in [pool.submit(send, f) for f in pending]:
            future.result()
    if pending:
        log.info("Uploaded %d files, %d bytes", len(pending), sent)
    return uploaded, sent


def delete_orphans(
    hook: Any,
    log: Any,
    earlier: Mapping[tuple[str, int], dict[str, Any]],
    keep: set[str],
    names: set[str],
    recorded: set[str],
) -> int:
    """Delete what a killed try of this task instance uploaded that nothing uses now; return how many.

    A candidate is a file of :func:`earlier_uploads` (purpose ``assistants``, a tagged name, created in the retry
    window) that is neither attached to the store nor planned to be attached (``keep``). It is deleted only when
    it is tied to this sync by one of two narrow rules, so a file someone else uploaded is never touched:

    * its exact name is one an earlier try recorded (its :func:`upload_mark`), before uploading, in the task state
      store (``recorded``, Airflow 3.3+): this covers a file deleted from the source, or changed, before the retry;
    * its name carries the file name of a file of this source or a path of this store (``names``): a version of
      a file that changed again before the retry. Without a task state store, an upload for a file deleted from
      the source (and never in the store) before the retry cannot be told from another sync's and stays.
    """
    deleted = 0
    for (filename, _), item in earlier.items():
        match = TAGGED.match(filename)
        if item["id"] in keep or match is None:
            continue
        if upload_mark(filename) in recorded:
            why = "an earlier try recorded uploading it"
        elif match.group(1) in names:
            why = "an earlier version of a file of this sync"
        else:
            continue
        log.info("Deleting %s (%s): uploaded by a killed try (%s), not needed any more", item["id"], filename, why)
        hook.delete_file(item["id"], missing_ok=True)
        deleted += 1
    if deleted:
        log.info("Deleted %d files a killed try uploaded and nothing uses", deleted)
    return deleted


def drop(hook: Any, store_id: str, file_id: str) -> None:
    """Detach a file from the store and delete it (both tolerate its being gone already)."""
    hook.detach_vector_store_file(store_id, file_id, missing_ok=True)
    hook.delete_file(file_id, missing_ok=True)


def wait_for_indexing(
    hook: Any, log: Any, store_id: str, batch_ids: list[str], *, started: float, poll_interval: float, timeout: float
) -> None:
    """Poll on the worker until the batches end and nothing of the store is still indexing, or ``timeout`` (counted
    from ``started``), through the one wait loop (:func:`~airflow_openai_files.hooks.waiting.wait_until`)."""
    from airflow_openai_files.hooks.waiting import wait_until

    pending = list(batch_ids)

    def fetch() -> dict[str, Any]:
        pending[:] = [
            batch_id
            for batch_id in pending
            if hook.get_vector_store_file_batch(store_id, batch_id).get("status") not in TERMINAL_STATUSES
        ]
        return dict(hook.get_vector_store(store_id))

    def judge(store: dict[str, Any]) -> Verdict:
        done = not pending and file_counts(store)["in_progress"] == 0
        return Verdict("success" if done else "waiting", describe_store(store))

    wait_until(
        fetch,
        judge,
        poll_interval=poll_interval,
        timeout=max(0.0, timeout - (time.monotonic() - started)),
        describe=describe_store,
        what=f"{store_id} to finish indexing",
        log=log,
    )


def failed_files(hook: Any, store_id: str) -> list[dict[str, Any]]:
    """``{"path", "file_id", "code", "message"}`` of every file of ours in the store that failed, or was cancelled
    (someone cancelled a file batch: the file is not indexed either)."""
    failed = []
    items = [
        *hook.list_vector_store_files(store_id, status="failed", page_size=100),
        *hook.list_vector_store_files(store_id, status="cancelled", page_size=100),
    ]
    for item in items:
        attributes = item.get("attributes") or {}
        if PATH_ATTRIBUTE not in attributes:
            continue
        error = item.get("last_error") or {"code": "cancelled", "message": "cancelled before it was indexed"}
        failed.append(
            {
                "path": attributes[PATH_ATTRIBUTE],
                "file_id": item["id"],
                "code": error.get("code"),
                "message": error.get("message"),
            }
        )
    return failed


def batch_entry(f: SourceFile, file_id: str, attributes: Any, chunking_strategy: Any) -> dict[str, Any]:
    """The file batch entry of one file: the user's attributes (a dict, or a callable of the path), the hash
    and the path the next run compares with, and the chunking strategy."""
    if len(f.path) > 512:
        raise OpenAIFilesValidationError(f"Path {f.path[:80]}... is longer than an attribute value (512)")
    given = attributes(f.path) if callable(attributes) else attributes
    where = f"attributes of {f.path}"
    checked = check_attributes(given, reserved=len(RESERVED_ATTRIBUTES), what=where) or {}
    clash = sorted(set(checked) & set(RESERVED_ATTRIBUTES))
    if clash:
        raise OpenAIFilesValidationError(f"{where} use names the operator records: {clash}")
    entry: dict[str, Any] = {
        "file_id": file_id,
        "attributes": {**checked, HASH_ATTRIBUTE: f.sha256, PATH_ATTRIBUTE: f.path},
    }
    if chunking_strategy is not None:
        entry["chunking_strategy"] = check_chunking_strategy(chunking_strategy)
    return entry


def describe_summary(summary: Mapping[str, Any]) -> str:
    return (
        f"Synced {summary['vector_store_id']}: {summary['added']} added, {summary['replaced']} replaced,"
        f" {summary['removed']} removed, {summary['unchanged']} unchanged, {len(summary['failed'])} failed;"
        f" {summary['bytes']} bytes sent, {summary['usage_bytes']} bytes used"
    )


def describe_failures(store_id: str, failed: list[dict[str, Any]], allowed: int, shown: int = 50) -> str:
    """Every failed file (the first ``shown``) with its ``last_error``."""
    listed = "; ".join(f"{f['path']} ({f['file_id']}): {f['code']} ({f['message']})" for f in failed[:shown])
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"{len(failed)} files failed to index in {store_id} (max_failed_files={allowed}): {listed}{more}"
