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

Every operator that creates something goes through :func:`resume_or_create` (uploads through
:func:`upload_once`, which builds on it): look up what an earlier try recorded, check it still exists
and can be used, else look for it on the service within :func:`retry_window`, else create it and record
it. One window start (the DAG run's start) and one clock-skew allowance
(:data:`~airflow_openai_files.limits.CLOCK_SKEW_SECONDS`, applied by the hook's lookups where a local
time meets the service's ``created_at``) serve every kind of work.

The lookups themselves (``find_uploaded``, ``find_batch``, ``find_fine_tuning_job``) stay in the hook:
the hook also uses them within one call, to tell whether an attempt whose answer was lost created the
object, where no task and no try exist.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
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


def retry_window(context: Mapping[str, Any] | None) -> float | None:
    """
    The unix time from which a retry looks on the service for what an earlier try created, or None.

    The DAG run's start (else the time it was queued): no try of this run can have created anything
    before it, and it is what Airflow before 3.3 gives a task without the metadata database (the task
    SDK's ``ti.start_date`` is the running try's). Never the logical date, which can be days earlier.
    None on a first try (there is nothing earlier to find) and when the run's times are unknown.
    The lookups subtract the clock-skew allowance themselves.
    """
    if try_number(context) <= 1:
        return None
    dag_run = (context or {}).get("dag_run")
    started = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
    return started.timestamp() if started is not None else None


def with_task_key(metadata: Mapping[str, str] | None, context: Mapping[str, Any] | None) -> dict[str, str]:
    """The user's metadata plus the task's key, by which a retried try finds the object it created."""
    result = dict(metadata or {})
    key = task_key(context)
    if key:
        result[TASK_KEY_METADATA] = key
    return result


def _always_usable(obj: dict[str, Any]) -> str | None:
    return None


def resume_or_create(
    record: TaskRecord,
    name: str,
    *,
    context: Mapping[str, Any] | None,
    what: str,
    fetch: Callable[[str], dict[str, Any]],
    create: Callable[[], dict[str, Any]],
    find: Callable[[float | None], dict[str, Any] | None] | None = None,
    unusable: Callable[[dict[str, Any]], str | None] = _always_usable,
    identity: Mapping[str, Any] | None = None,
    logger: Any = None,
) -> tuple[dict[str, Any], bool]:
    """
    The object an earlier try of this task instance created, if it can still be used; else a new one.

    1. What an earlier try recorded under ``name`` (task state store): fetched again, so an object
       deleted meanwhile (``fetch`` raises :class:`~airflow_openai_files.exceptions.OpenAIFilesNotFoundError`),
       one ``unusable`` says no to (a failed job, a file in ``error``) or one recorded for other input
       (``identity`` differs, e.g. the content's sha256) is not reused.
    2. Nothing recorded, on a retry: ``find(since)`` looks on the service (by the task key in the
       metadata, or by name and size) from :func:`retry_window` on (None when the run's start is
       unknown: a lookup by task key then reads further, one by name and size gives up) - the way for
       Airflow without a task state store, and for a try killed between creating and recording.
    3. Else ``create()``; what it returns is recorded (with ``identity``) for the next try.

    A first try always creates: nothing earlier can exist (a task run again on purpose is a new try).

    :param record: the task's record; ``name`` is the entry in it (``"batch"``, ``"input_file"``).
    :param what: the object in words for the log (``"batch"``, ``"training file"``).
    :param find: the lookup on the service, given the window start; None when there is none (or when
        only the record can be trusted, as for content compared by sha256).
    :return: ``(object, reused)``.
    """
    from airflow_openai_files.exceptions import OpenAIFilesNotFoundError

    out = logger or log
    attempt = try_number(context)
    entry = record.get(name)
    if attempt > 1 and isinstance(entry, dict) and entry.get("id"):
        object_id, by = str(entry["id"]), f"recorded by try {entry.get('try', '?')}"
        differs = [key for key, value in (identity or {}).items() if entry.get(key) != value]
        reason: str | None = None
        if differs:
            reason = f"differs in {', '.join(differs)}"
        else:
            try:
                obj = fetch(object_id)
            except OpenAIFilesNotFoundError as err:
                note = f", request id {err.request_id}" if err.request_id else ""
                reason = f"no longer exists (HTTP 404{note})"
            else:
                reason = unusable(obj)
                if reason is None:
                    same = f", same {', '.join(identity)}" if identity else ""
                    out.info(
                        "Try %d: reusing %s %s %s (status %s%s)", attempt, what, object_id, by, obj.get("status"), same
                    )
                    return obj, True
        out.info("Try %d: %s %s %s %s; creating a new one", attempt, what, object_id, by, reason)
    elif attempt > 1 and find is not None:
        found = find(retry_window(context))
        if found is not None and unusable(found) is None:
            out.info(
                "Try %d: reusing %s %s that an earlier try created at %s (status %s)",
                attempt,
                what,
                found.get("id"),
                found.get("created_at"),
                found.get("status"),
            )
            record.set(name, {**(identity or {}), "id": found.get("id"), "try": attempt})
            return found, True
        out.info("Try %d: no %s of an earlier try to reuse; creating one", attempt, what)
    created = create()
    record.set(name, {**(identity or {}), "id": created.get("id"), "try": attempt})
    return created, False


def _file_unusable(file: dict[str, Any]) -> str | None:
    from airflow_openai_files.resources import files

    status = file.get("status")
    return f"is {status}" if status in files.FAILURE else None


def upload_once(
    hook: Any,
    context: Mapping[str, Any] | None,
    record: TaskRecord,
    name: str,
    *,
    source: Any,
    purpose: str,
    upload: Callable[[], dict[str, Any]],
    filename: str | None = None,
    fingerprint: dict[str, Any] | None = None,
    what: str = "uploaded file",
    logger: Any = None,
) -> dict[str, Any]:
    """
    Upload ``source`` (``upload()``), unless an earlier try of this task instance uploaded the same content.

    With a task state store (Airflow 3.3+): only the recorded file, on an exact filename, size, sha256
    and purpose match (:func:`content_fingerprint`, one extra read of the source), and only while it
    still exists. Without one: the newest file of the same name, size and purpose created since the
    DAG run started (content cannot be compared there, which the log says).

    :param fingerprint: the source's :func:`content_fingerprint` when the caller already has it.
    """
    out = logger or log
    identity: dict[str, Any] | None = None
    if record.available:
        fingerprint = fingerprint or content_fingerprint(source, filename)
        if fingerprint is None:  # a file object that cannot seek: nothing to compare a recorded file with
            created = upload()
            return created
        identity = {**fingerprint, "purpose": purpose}

    def find(since: float | None) -> dict[str, Any] | None:
        if since is None:
            out.info("The DAG run's start is unknown, so there is no window to look for an earlier try's upload in")
            return None
        seen = fingerprint or content_fingerprint(source, filename)
        if seen is None:
            out.info("A file object that cannot seek cannot be compared with an earlier try's upload")
            return None
        found: dict[str, Any] | None = hook.find_uploaded(
            str(seen["filename"]), int(seen["bytes"]), purpose, since=since, what=f"Uploading {seen['filename']}"
        )
        if found is not None:
            out.warning(
                "%s has the name, size and purpose of %s; this Airflow has no task state store, so its "
                "content could not be compared",
                found["id"],
                seen["filename"],
            )
        return found

    file, _ = resume_or_create(
        record,
        name,
        context=context,
        what=what,
        fetch=hook.get_file,
        create=upload,
        # With a store the recorded file is compared by content; without one, look by name, size and purpose.
        find=None if record.available else find,
        unusable=_file_unusable,
        identity=identity,
        logger=out,
    )
    return file
