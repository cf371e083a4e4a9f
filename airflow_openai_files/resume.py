"""What a task try created on the service, remembered for the next try of the same task instance.

Remote work (an uploaded file, an Upload in progress, a batch, a fine-tuning job) must be resumed by
a task retry, never created a second time. Two mechanisms, used together:

* **The task state store** (Airflow 3.3+, AIP-103: ``context["task_state_store"]``): scoped to the
  task instance (dag, run, task, map index), it survives retries and is the exact record: the id
  of what was created and the fingerprint of the input it was created from. Airflow clears XComs
  before every retry, so XCom cannot carry this.
* **A task key in the service object's metadata** (every Airflow version): batches and fine-tuning
  jobs carry ``metadata`` the service stores and lists back, so a retry that has no state store
  (Airflow < 3.3, or a record lost with a killed worker before it was written) finds the object it
  created by listing and matching :data:`TASK_KEY_METADATA`.

``TaskRecord`` degrades to a no-op outside a task (unit tests calling ``execute(context={})``,
Airflow < 3.3), so callers need no version checks.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Metadata key holding :func:`task_key` on batches and fine-tuning jobs created by an operator.
TASK_KEY_METADATA = "airflow_task_key"
#: Metadata key holding a random token per ``create_*`` call, so the hook can tell, after an
#: ambiguous failure (connection lost after the request was sent), whether its request created
#: the object before sending it again.
REQUEST_KEY_METADATA = "openai_files_request_key"


def _ti(context: Mapping[str, Any] | None) -> Any:
    return (context or {}).get("ti") or (context or {}).get("task_instance")


def task_key(context: Mapping[str, Any] | None) -> str | None:
    """A short stable key for the task instance: the same on every try, different per map index.

    ``None`` outside a task. 32 hex characters (well within the service's 512-character metadata
    values), derived from dag id, run id, task id and map index.
    """
    ti = _ti(context)
    if ti is None:
        return None
    parts = [
        str(getattr(ti, "dag_id", "")),
        str(getattr(ti, "run_id", "")),
        str(getattr(ti, "task_id", "")),
        str(getattr(ti, "map_index", -1)),
    ]
    if not any(parts[:3]):
        return None
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def try_number(context: Mapping[str, Any] | None) -> int:
    """The running try's number (1 outside a task)."""
    ti = _ti(context)
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) and number > 0 else 1


class TaskRecord:
    """Namespaced get/set over ``context["task_state_store"]``; a no-op where there is none.

    Values must be JSON (str, int, float, bool, list, dict). They are kept with no expiry: the
    record must outlive any retry delay. ``namespace`` keeps operators that share a task (none do
    today) and kinds of work apart, e.g. ``"upload"``, ``"batch"``, ``"fine_tuning_job"``.
    """

    def __init__(self, context: Mapping[str, Any] | None, namespace: str) -> None:
        self._store = (context or {}).get("task_state_store")
        self._namespace = namespace

    @property
    def available(self) -> bool:
        """True when the running Airflow keeps a task state store for this task instance."""
        return self._store is not None

    def _key(self, name: str) -> str:
        return f"openai_files.{self._namespace}.{name}"

    def get(self, name: str, default: Any = None) -> Any:
        if self._store is None:
            return default
        try:
            value = self._store.get(self._key(name))
        except Exception as exc:  # a record we cannot read must not fail the task: fall back
            log.warning("Could not read task state %r (%s); continuing without it", self._key(name), exc)
            return default
        return default if value is None else value

    def set(self, name: str, value: Any) -> None:
        if self._store is None or value is None:
            return
        from airflow_openai_files._compat import NEVER_EXPIRE

        try:
            self._store.set(self._key(name), value, retention=NEVER_EXPIRE)
        except Exception as exc:  # the metadata key still lets the next try find the work
            log.warning("Could not record task state %r (%s); a retry will look it up instead", self._key(name), exc)

    def delete(self, name: str) -> None:
        if self._store is None:
            return
        try:
            self._store.delete(self._key(name))
        except Exception as exc:
            log.warning("Could not delete task state %r (%s)", self._key(name), exc)


def content_fingerprint(source: Any, filename: str | None = None) -> dict[str, Any] | None:
    """``{"filename", "bytes", "sha256"}`` of what an upload of ``source`` would send.

    One extra sequential read of the source (local files are cheap; a remote ObjectStoragePath
    is read twice): the price of never reusing a file whose content differs by one byte. A file
    object is read from where it stands and put back there; None for one that cannot seek (it is
    read once, by the upload).
    """
    import os

    from airflow_openai_files.transfer.sources import resolve_source

    if hasattr(source, "read") and not hasattr(type(source), "fs"):
        if not (hasattr(source, "seekable") and source.seekable()):
            return None
        start, digest, size = source.tell(), hashlib.sha256(), 0
        try:
            while block := source.read(1024 * 1024):
                digest.update(block)
                size += len(block)
        finally:
            source.seek(start)
        name = filename or os.path.basename(str(getattr(source, "name", "") or "")) or None
        return {"filename": name, "bytes": size, "sha256": digest.hexdigest()}

    upload = resolve_source(source)
    try:
        digest = hashlib.sha256()
        with upload.open() as stream:
            while block := stream.read(1024 * 1024):
                digest.update(block)
        return {"filename": filename or upload.name, "bytes": upload.size, "sha256": digest.hexdigest()}
    finally:
        upload.close()


def run_started(context: Mapping[str, Any] | None) -> Any:
    """The DAG run's start (a datetime), or None: the earliest an earlier try of this run can have begun.

    Airflow before 3.3 gives a task no way to read an earlier try's start without the metadata
    database (the task SDK's ``ti.start_date`` is the running try's), so the window of a name/size
    match starts here - never at the logical date, which can be days earlier.
    """
    dag_run = (context or {}).get("dag_run")
    return getattr(dag_run, "start_date", None)


def reusable_upload(
    hook: Any,
    log: Any,
    context: Mapping[str, Any] | None,
    record: TaskRecord,
    purpose: str,
    fingerprint: dict[str, Any] | None,
    source: Any,
    filename: str | None,
) -> dict[str, Any] | None:
    """The file an earlier try of this task instance uploaded from the same content, or None.

    With a task state store (Airflow 3.3+): only the recorded file, on an exact name, size and
    sha256 match, and only while it still exists. Without one: the newest file of the same name,
    size and purpose created since the DAG run started (content cannot be compared there).
    """
    if record.available:
        earlier = record.get("file")
        if not earlier or not fingerprint:
            log.info("No earlier upload to reuse: no earlier try of this task recorded one")
            return None
        differs = [k for k in ("filename", "bytes", "sha256") if earlier.get(k) != fingerprint.get(k)]
        if earlier.get("purpose") != purpose:
            differs.append("purpose")
        if differs:
            log.info(
                "No earlier upload to reuse: %s uploaded by try %s differs in %s; uploading again",
                earlier.get("id"),
                earlier.get("try"),
                ", ".join(differs),
            )
            return None
        return _still_there(hook, log, earlier["id"], f"try {earlier.get('try')} (sha256 match)")
    started = run_started(context)
    if started is None:
        log.info("No earlier upload to reuse: the DAG run's start is unknown, so no window to look in")
        return None
    name = (fingerprint or {}).get("filename") or filename
    if fingerprint is None:
        fingerprint = content_fingerprint(source, filename)
        if fingerprint is None:
            log.info("No earlier upload to reuse: a file object that cannot seek cannot be compared")
            return None
        name = fingerprint["filename"]
    found = hook.find_uploaded(
        str(name), int(fingerprint["bytes"]), purpose, since=started.timestamp(), what=f"Uploading {name}"
    )
    if found is None:
        log.info(
            "No earlier upload to reuse: no %s of %s bytes and purpose %s since the run started at %s",
            name,
            fingerprint["bytes"],
            purpose,
            started.isoformat(),
        )
        return None
    log.warning(
        "Reusing %s uploaded at %s by an earlier try of this run (same name, size and purpose; this "
        "Airflow has no task state store, so its content could not be compared)",
        found["id"],
        found.get("created_at"),
    )
    return found


def _still_there(hook: Any, log: Any, file_id: str, by: str) -> dict[str, Any] | None:
    from airflow_openai_files.exceptions import OpenAIFilesError
    from airflow_openai_files.resources import files

    try:
        found = hook.get_file(file_id)
    except OpenAIFilesError as err:
        if err.http_status != 404:
            raise
        log.info("No earlier upload to reuse: %s uploaded by %s no longer exists; uploading again", file_id, by)
        return None
    if found.get("status") in files.FAILURE:
        log.info("No earlier upload to reuse: %s uploaded by %s is %s", file_id, by, found.get("status"))
        return None
    log.info("Reusing %s uploaded by %s", file_id, by)
    return found
