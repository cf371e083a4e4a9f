"""Keep a folder, a bucket prefix or a list of files in sync with an OpenAI vector store.

What is recorded where (the store is the record):

* every file the operator attaches carries two attributes, :data:`~.resources.vector_stores.HASH_ATTRIBUTE`
  (the SHA-256 of its bytes) and :data:`~.resources.vector_stores.PATH_ATTRIBUTE` (its path relative to the
  source); a run lists the store's files, compares them with the source and sends only the difference;
* every uploaded file is named ``<first 16 hex digits of its SHA-256>_<file name>``, so a retry finds a file a
  killed try uploaded but never attached (same name, same size, created since the DAG run started) and
  attaches it instead of uploading it again; such a file that is no longer wanted is deleted at the end;
* on Airflow 3.3+ the task state store also keeps the store id and the file batches a try created, so the next
  try waits for those batches rather than creating new ones.

Files of the store without the path attribute (attached by someone else) are left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_openai_files._compat import AirflowException, AirflowFailException, conf
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.limits import DEFAULT_CONN_ID, FILE_BATCH_MAX_FILES
from airflow_openai_files.operators.base import CONN_TEMPLATE_FIELDS, OpenAIFilesMixin
from airflow_openai_files.resources.vector_stores import (
    HASH_ATTRIBUTE,
    PATH_ATTRIBUTE,
    RESERVED_ATTRIBUTES,
    TERMINAL_STATUSES,
    describe_store,
    file_counts,
)
from airflow_openai_files.validation.vector_stores import check_attributes, check_chunking_strategy, check_store_expiry

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Purpose of the files a vector store reads.
PURPOSE = "assistants"
#: Files uploaded at once (each upload is one request; the hook's transport pools connections).
UPLOAD_CONCURRENCY = 4
#: Hex digits of the content hash in an uploaded file's name.
TAG_DIGITS = 16
_TAGGED = re.compile(r"^[0-9a-f]{16}_(.+)$")
#: Slack given to Airflow's own defer timeout over the trigger's.
DEFER_TIMEOUT_MARGIN = 60.0
_READ_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One file of the source: its path relative to the source (the record's key), location, size and hash."""

    path: str
    location: Any
    size: int
    sha256: str

    @property
    def upload_name(self) -> str:
        """``<hash prefix>_<name>``: what a retry looks for among the files a killed try uploaded."""
        return f"{self.sha256[:TAG_DIGITS]}_{PurePosixPath(self.path).name}"


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over POSIX relative paths: ``**`` any number of directories, ``*`` and ``?`` within one."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _patterns(value: str | Sequence[str] | None) -> list[re.Pattern[str]]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) and item for item in items):
        raise OpenAIFilesValidationError(f"include / exclude must be glob strings, got {value!r}")
    return [glob_regex(item) for item in items]


def _hash(location: Any) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with location.open("rb") as stream:
        while block := stream.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _walk(root: Any) -> Iterator[tuple[str, Any]]:
    """``(relative posix path, location)`` of every regular file under a folder or an ObjectStoragePath prefix."""
    from airflow_openai_files.transfer.sources import as_local_path

    local = as_local_path(root)
    if local is not None:
        if not local.is_dir():
            raise OpenAIFilesValidationError(f"Source folder {str(local)!r} does not exist or is not a folder")
        for path in sorted(local.rglob("*")):
            if path.is_file():
                yield path.relative_to(local).as_posix(), path
        return
    base = str(root.path).rstrip("/")
    # fsspec caches listings (and s3fs the ETags it then reads by): a sync must see the store as it is now.
    with contextlib.suppress(Exception):
        root.fs.invalidate_cache()
    found = False
    for path in sorted(root.rglob("*"), key=str):
        if path.is_file():
            found = True
            yield str(path.path)[len(base) :].lstrip("/"), path
    if not found and not root.exists():
        raise OpenAIFilesValidationError(f"Source prefix {root} does not exist")


def scan_source(source: Any, include: Any = "**/*", exclude: Any = None) -> list[SourceFile]:
    """Every file of ``source`` that ``include`` and not ``exclude`` select, hashed (streamed, one read each)."""
    from airflow_openai_files.transfer.sources import as_local_path, as_location

    includes, excludes = _patterns(include), _patterns(exclude)
    if isinstance(source, (list, tuple)):
        pairs = []
        for item in source:
            location = as_location(item)
            local = as_local_path(location)
            location = local if local is not None else location
            if local is not None and not local.is_file():
                raise OpenAIFilesValidationError(f"Source file {str(local)!r} does not exist or is not a file")
            pairs.append((PurePosixPath(str(getattr(location, "path", location))).name, location))
        names = [name for name, _ in pairs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise OpenAIFilesValidationError(f"Source files share a name (the record's key): {duplicates[:5]}")
    else:
        pairs = list(_walk(as_location(source)))
    files = []
    for path, location in pairs:
        if includes and not any(p.match(path) for p in includes):
            continue
        if any(p.match(path) for p in excludes):
            continue
        size, digest = _hash(location)
        files.append(SourceFile(path, location, size, digest))
    return files


class OpenAIVectorStoreSyncOperator(OpenAIFilesMixin, BaseOperator):
    """
    Make a vector store hold exactly the files of ``source`` (one vector store file per source file).

    Plans first, from the hashes recorded in the store's file attributes: unchanged files are skipped,
    changed ones replaced (the new version uploaded and attached, the old one detached and deleted once the
    new one is indexed), removed ones detached and deleted (``delete_removed``), new ones uploaded (the
    Uploads API above the hook's threshold) and attached through file batches of at most 2,000 files. Then
    waits for indexing, in the triggerer with ``deferrable=True``, for at most ``timeout`` seconds.

    Fails only when more than ``max_failed_files`` files failed to index; the message names each one with
    its ``last_error``. Empty source files are not uploaded (the Files API refuses them) and count as failed
    (``invalid_file``).

    Returns (XCom) ``{"vector_store_id", "added", "replaced", "removed", "unchanged", "failed", "bytes",
    "usage_bytes"}``: ``added`` ... ``unchanged`` are numbers of files (a sync of thousands of files keeps its
    XCom small; the task log lists the paths), ``failed`` a list of ``{"path", "file_id", "code", "message"}``,
    ``bytes`` what this run uploaded, ``usage_bytes`` the store's usage after the sync.

    :param source: a local folder, an ObjectStoragePath prefix or a ``scheme://`` URL string (``s3://bucket/docs``),
        or a list of file paths / URLs (each keyed by its file name).
    :param vector_store_id: the store to sync (``vs_...``); or give ``vector_store_name``.
    :param vector_store_name: find the store by this name, create it when there is none.
    :param include: glob(s) over paths relative to the source (``**`` crosses folders).
    :param exclude: glob(s) of paths to leave out.
    :param attributes: attributes for every file, or a callable ``path -> dict`` (at most 14 pairs: two are
        the operator's record).
    :param chunking_strategy: ``{"type": "auto"}`` or ``{"type": "static", "static": {...}}`` for attached files.
    :param delete_removed: detach and delete the files whose source file is gone.
    :param max_failed_files: failed files tolerated before the task fails.
    :param expires_after: days of inactivity before a store this operator creates expires (1..365).
    :param deferrable: wait for indexing in the triggerer.
    :param poll_interval: seconds between two checks of the indexing.
    :param timeout: seconds to wait for indexing at most.
    """

    template_fields: Sequence[str] = ("source", "vector_store_id", "vector_store_name", *CONN_TEMPLATE_FIELDS)
    ui_color = "#c9e4de"

    def __init__(
        self,
        *,
        source: Any,
        vector_store_id: str | None = None,
        vector_store_name: str | None = None,
        include: str | Sequence[str] = "**/*",
        exclude: str | Sequence[str] | None = None,
        attributes: dict[str, Any] | Callable[[str], dict[str, Any]] | None = None,
        chunking_strategy: dict[str, Any] | None = None,
        delete_removed: bool = True,
        max_failed_files: int = 0,
        expires_after: Any = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        openai_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(openai_conn_id=openai_conn_id, **kwargs)
        self.source = source
        self.vector_store_id = vector_store_id
        self.vector_store_name = vector_store_name
        self.include = include
        self.exclude = exclude
        self.attributes = attributes
        self.chunking_strategy = chunking_strategy
        self.delete_removed = delete_removed
        self.max_failed_files = max_failed_files
        self.expires_after = expires_after
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.check_at_parse(self.task_id, self._check_arguments)

    def _check_arguments(self) -> None:
        if not self.vector_store_id and not self.vector_store_name:
            raise OpenAIFilesValidationError("Give vector_store_id or vector_store_name")
        if not isinstance(self.max_failed_files, int) or self.max_failed_files < 0:
            raise OpenAIFilesValidationError(f"max_failed_files must be an integer >= 0, got {self.max_failed_files!r}")
        if not callable(self.attributes):
            check_attributes(self.attributes, reserved=len(RESERVED_ATTRIBUTES))
        check_chunking_strategy(self.chunking_strategy)
        check_store_expiry(self.expires_after)
        _patterns(self.include)
        _patterns(self.exclude)
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise OpenAIFilesValidationError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    # -- the run -----------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        from airflow_openai_files import resume

        self.check_at_run(self._check_arguments)
        started = time.monotonic()
        record = resume.TaskRecord(context, "vector_store_sync")
        files = self.check_at_run(scan_source, self.source, self.include, self.exclude)
        self.log.info("Source %s: %d files, %d bytes", self.source, len(files), sum(f.size for f in files))
        store = self._store(record)
        store_id = store["id"]
        by_path: dict[str, list[dict[str, Any]]] = {}
        for item in self.hook.list_vector_store_files(store_id, page_size=100):
            path = (item.get("attributes") or {}).get(PATH_ATTRIBUTE)
            if isinstance(path, str):
                by_path.setdefault(path, []).append(item)

        wanted = {f.path: f for f in files}
        unchanged, to_send, replaced_old, removed_old = [], [], [], []
        local_failed: list[dict[str, Any]] = []
        for f in files:
            have = by_path.get(f.path, [])
            same = [item for item in have if (item.get("attributes") or {}).get(HASH_ATTRIBUTE) == f.sha256]
            if same:
                unchanged.append(f.path)
                # Older versions next to the current one (a killed try's leftovers) go.
                replaced_old += [item["id"] for item in have if item not in same[:1]]
                continue
            if f.size == 0:
                local_failed.append(
                    {
                        "path": f.path,
                        "file_id": None,
                        "code": "invalid_file",
                        "message": "The file is empty: not uploaded (the Files API refuses empty files)",
                    }
                )
                continue
            to_send.append(f)
            replaced_old += [item["id"] for item in have]
        if self.delete_removed:
            removed_old = [item["id"] for path, items in by_path.items() if path not in wanted for item in items]
        added = sum(1 for f in to_send if f.path not in by_path)
        summary: dict[str, Any] = {
            "vector_store_id": store_id,
            "added": added,
            "replaced": len(to_send) - added,
            "removed": len({path for path in by_path if path not in wanted}) if self.delete_removed else 0,
            "unchanged": len(unchanged),
            "failed": local_failed,
            "bytes": 0,
            "usage_bytes": int(store.get("usage_bytes") or 0),
        }
        self.log.info(
            "Plan for %s: %d to add, %d to replace, %d to remove, %d unchanged, %d empty (not sent)",
            store_id,
            summary["added"],
            summary["replaced"],
            summary["removed"],
            summary["unchanged"],
            len(local_failed),
        )
        for f in to_send:
            self.log.debug("%s %s (%d bytes)", "replace" if f.path in by_path else "add", f.path, f.size)

        batch_ids: list[str] = list(record.get("batches", []))
        earlier = self._earlier_uploads(context)
        uploaded, sent_bytes = self._upload(to_send, earlier)
        summary["bytes"] = sent_bytes
        entries = [self._entry(f, uploaded[f.path]) for f in to_send]
        for start in range(0, len(entries), FILE_BATCH_MAX_FILES):
            chunk = entries[start : start + FILE_BATCH_MAX_FILES]
            batch = self.hook.create_vector_store_file_batch(store_id, files=chunk)
            batch_ids.append(batch["id"])
            record.set("batches", batch_ids)
        for file_id in removed_old:
            self._drop(store_id, file_id)
        attached = {item["id"] for items in by_path.values() for item in items}
        names = {PurePosixPath(f.path).name for f in files}
        self._delete_orphans(earlier, set(uploaded.values()) | attached, names)

        kwargs: dict[str, Any] = {"summary": summary, "batch_ids": batch_ids, "replaced_old": replaced_old}
        waiting = bool(batch_ids) or file_counts(self.hook.get_vector_store(store_id))["in_progress"] > 0
        if waiting and self.deferrable:
            from airflow_openai_files.triggers import OpenAIVectorStoreFileBatchTrigger

            remaining = max(1.0, self.timeout - (time.monotonic() - started))
            self.log.info("Deferring: the triggerer waits for %s to index (%d batches)", store_id, len(batch_ids))
            self.defer(
                trigger=OpenAIVectorStoreFileBatchTrigger(
                    store_id,
                    batch_ids,
                    include_store=True,
                    openai_conn_id=self.openai_conn_id,
                    poll_interval=self.poll_interval,
                    timeout=remaining,
                    deadline=time.time() + remaining,
                    carry=kwargs,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=remaining + DEFER_TIMEOUT_MARGIN),
            )
        if waiting:
            self._wait(store_id, batch_ids, started)
        return self._finish(context, **kwargs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        carry = (event or {}).get("carry") or {}
        summary = carry.get("summary")
        if not event or summary is None:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event carrying the plan")
        status = event.get("status")
        if status == "timeout":
            raise AirflowException(f"{self.task_id}: {event.get('message')}")  # a retry resumes the wait
        if status == "error" and not event.get("batches"):
            raise AirflowException(f"{self.task_id}: {event.get('message')}")
        if status == "error":
            self.log.warning("%s", event.get("message"))
        return self._finish(
            context,
            summary=summary,
            batch_ids=carry.get("batch_ids") or [],
            replaced_old=carry.get("replaced_old") or [],
        )

    # -- steps -------------------------------------------------------------------------------------------------
    def _store(self, record: Any) -> dict[str, Any]:
        """The store to sync: by id, else the newest with ``vector_store_name``, else a new one."""
        store_id = self.vector_store_id or record.get("store_id")
        if store_id:
            try:
                store = self.hook.get_vector_store(store_id)
            except OpenAIFilesError as err:
                if err.http_status == 404:
                    from airflow_openai_files.resources.vector_stores import not_found_message

                    raise AirflowFailException(not_found_message("Vector store", store_id, err.request_id)) from err
                raise
        else:
            found = self.hook.find_vector_store(name=self.vector_store_name)
            if found is not None:
                store = found
            else:
                store = self.hook.create_vector_store(self.vector_store_name, expires_after=self.expires_after)
        if store.get("status") == "expired":
            raise AirflowFailException(f"{describe_store(store)}: an expired store cannot be used; sync into a new one")
        record.set("store_id", store["id"])
        self.log.info("%s", describe_store(store))
        return store

    def _attributes_for(self, path: str) -> dict[str, Any]:
        given = self.attributes(path) if callable(self.attributes) else self.attributes
        checked = check_attributes(given, reserved=len(RESERVED_ATTRIBUTES), what=f"attributes of {path}") or {}
        clash = sorted(set(checked) & set(RESERVED_ATTRIBUTES))
        if clash:
            raise OpenAIFilesValidationError(f"attributes of {path} use names the operator records: {clash}")
        return checked

    def _entry(self, f: SourceFile, file_id: str) -> dict[str, Any]:
        if len(f.path) > 512:
            raise OpenAIFilesValidationError(f"Path {f.path[:80]}... is longer than an attribute value (512)")
        entry: dict[str, Any] = {
            "file_id": file_id,
            "attributes": {**self._attributes_for(f.path), HASH_ATTRIBUTE: f.sha256, PATH_ATTRIBUTE: f.path},
        }
        if self.chunking_strategy is not None:
            entry["chunking_strategy"] = check_chunking_strategy(self.chunking_strategy)
        return entry

    def _earlier_uploads(self, context: Context) -> dict[tuple[str, int], dict[str, Any]]:
        """Files a killed try of this run uploaded: tagged name and size -> File (newest first wins)."""
        from airflow_openai_files import resume

        if resume.try_number(context) <= 1:
            return {}
        started = resume.run_started(context)
        horizon = started.timestamp() - 600 if started is not None else None
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for item in self.hook.list_files(purpose=PURPOSE):
            if horizon is not None and int(item.get("created_at") or 0) < horizon:
                break  # newest first: the rest is older still
            if _TAGGED.match(str(item.get("filename") or "")):
                found.setdefault((item["filename"], int(item.get("bytes") or 0)), item)
        self.log.info("Retry: %d tagged files uploaded since the run started are candidates for reuse", len(found))
        return found

    def _upload(
        self, to_send: list[SourceFile], earlier: dict[tuple[str, int], dict[str, Any]]
    ) -> tuple[dict[str, str], int]:
        """``{path: file id}`` for every file to send (reusing a killed try's upload), and the bytes sent."""
        uploaded: dict[str, str] = {}
        sent = 0
        lock = threading.Lock()
        pending = []
        for f in to_send:
            found = earlier.get((f.upload_name, f.size))
            if found is not None:
                uploaded[f.path] = found["id"]
            else:
                pending.append(f)
        if earlier:
            self.log.info("Reusing %d files a killed try uploaded", len(uploaded))
        hook = self.hook
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
            self.log.info("Uploaded %d files, %d bytes", len(pending), sent)
        return uploaded, sent

    def _delete_orphans(self, earlier: dict[tuple[str, int], dict[str, Any]], keep: set[str], names: set[str]) -> None:
        """Delete what a killed try of this run uploaded for a file of this source and nothing uses now
        (e.g. a version that changed again before the retry)."""
        for (filename, _), item in earlier.items():
            match = _TAGGED.match(filename)
            if item["id"] in keep or match is None or match.group(1) not in names:
                continue
            self.log.info("Deleting %s (%s): uploaded by a killed try, not needed any more", item["id"], filename)
            self.hook.delete_file(item["id"], missing_ok=True)

    def _drop(self, store_id: str, file_id: str) -> None:
        """Detach a file from the store and delete it (both tolerate its being gone already)."""
        self.hook.detach_vector_store_file(store_id, file_id, missing_ok=True)
        self.hook.delete_file(file_id, missing_ok=True)

    def _wait(self, store_id: str, batch_ids: list[str], started: float) -> None:
        """Poll on the worker until the batches end and nothing of the store is still indexing."""
        pending = list(batch_ids)
        while True:
            pending = [
                batch_id
                for batch_id in pending
                if self.hook.get_vector_store_file_batch(store_id, batch_id).get("status") not in TERMINAL_STATUSES
            ]
            store = self.hook.get_vector_store(store_id) if not pending else None
            if store is not None and file_counts(store)["in_progress"] == 0:
                self.log.info("%s", describe_store(store))
                return
            waited = time.monotonic() - started
            if waited + self.poll_interval > self.timeout:
                what = describe_store(store or self.hook.get_vector_store(store_id))
                raise AirflowException(f"{self.task_id}: timed out after {waited:.0f}s waiting for indexing: {what}")
            time.sleep(self.poll_interval)

    def _finish(
        self, context: Context, *, summary: dict[str, Any], batch_ids: list[str], replaced_old: list[str]
    ) -> dict[str, Any]:
        from airflow_openai_files import resume

        store_id = summary["vector_store_id"]
        for file_id in replaced_old:
            self._drop(store_id, file_id)
        failed = list(summary.get("failed") or [])
        for item in self.hook.list_vector_store_files(store_id, status="failed", page_size=100):
            attributes = item.get("attributes") or {}
            if PATH_ATTRIBUTE not in attributes:
                continue
            error = item.get("last_error") or {}
            failed.append(
                {
                    "path": attributes[PATH_ATTRIBUTE],
                    "file_id": item["id"],
                    "code": error.get("code"),
                    "message": error.get("message"),
                }
            )
        store = self.hook.get_vector_store(store_id)
        summary = {**summary, "failed": failed, "usage_bytes": int(store.get("usage_bytes") or 0)}
        self.log.info(
            "Synced %s: %d added, %d replaced, %d removed, %d unchanged, %d failed; %d bytes sent, %d bytes used",
            store_id,
            summary["added"],
            summary["replaced"],
            summary["removed"],
            summary["unchanged"],
            len(failed),
            summary["bytes"],
            summary["usage_bytes"],
        )
        resume.TaskRecord(context, "vector_store_sync").delete("batches")
        if len(failed) > self.max_failed_files:
            listed = "; ".join(f"{f['path']} ({f['file_id']}): {f['code']} ({f['message']})" for f in failed[:50])
            more = f"; and {len(failed) - 50} more" if len(failed) > 50 else ""
            raise AirflowFailException(
                f"{self.task_id}: {len(failed)} files failed to index in {store_id} (max_failed_files="
                f"{self.max_failed_files}): {listed}{more}"
            )
        return summary

    def on_kill(self) -> None:
        self.hook.cancel_active_uploads()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The source as input dataset(s), the vector store as output."""
        from airflow.providers.common.compat.openlineage.facet import Dataset

        from airflow_openai_files._lineage import location_dataset, operator_lineage, service_namespace

        summary = task_instance.xcom_pull(task_ids=task_instance.task_id) or {}
        sources = self.source if isinstance(self.source, (list, tuple)) else [self.source]
        outputs = []
        if summary.get("vector_store_id"):
            namespace = service_namespace(self.hook.settings.base_url)
            outputs.append(Dataset(namespace=namespace, name=f"vector_stores/{summary['vector_store_id']}"))
        return operator_lineage(inputs=[location_dataset(item) for item in sources], outputs=outputs)


__all__ = ["OpenAIVectorStoreSyncOperator", "SourceFile", "glob_regex", "scan_source"]
