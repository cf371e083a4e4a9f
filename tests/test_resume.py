"""``resume_or_create`` and ``upload_once`` against the emulator: a retry reuses what an earlier try
recorded while it still exists, and creates it anew exactly once when it is gone.

Airflow 3.3's task state store is stood in for by :class:`StateStore` (get/set/delete over one task
instance's scope, kept across tries, JSON values only).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._compat import TaskDeferred
from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIBatchOperator, OpenAIFineTuningJobOperator
from airflow_openai_files.resume import TASK_KEY_METADATA, TaskRecord, resume_or_create, upload_once
from tests.support.task_helpers import batch_lines, fine_tune_lines, make_context

MODEL = "gpt-4.1-mini-2025-04-14"
ENDPOINT = "/v1/chat/completions"


class StateStore:
    """``context["task_state_store"]`` of one task instance."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def context(try_number: int, store: StateStore | None) -> dict[str, Any]:
    ctx = make_context(try_number=try_number)
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


class Counter:
    """``create`` for resume_or_create that counts its calls."""

    def __init__(self, create: Any) -> None:
        self.calls = 0
        self._create = create

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        result: dict[str, Any] = self._create()
        return result


# -- one object of each kind, through resume_or_create / upload_once ----------------------------------------


def test_upload_is_reused_while_it_exists_and_uploaded_anew_once_when_deleted(
    openai_files_connection: Any, tmp_path: Path
) -> None:
    emu, store, hook = openai_files_connection, StateStore(), OpenAIFilesHook()
    source = tmp_path / "notes.txt"
    source.write_bytes(b"some notes\n")
    upload = Counter(lambda: hook.upload_file(str(source), "user_data"))

    def attempt(try_number: int) -> dict[str, Any]:
        ctx = context(try_number, store)
        return upload_once(
            hook, ctx, TaskRecord(ctx, "upload"), "file", source=str(source), purpose="user_data", upload=upload
        )

    first = attempt(1)
    assert attempt(2)["id"] == first["id"] and upload.calls == 1
    hook.delete_file(first["id"])
    third = attempt(3)
    fourth = attempt(4)
    assert third["id"] != first["id"] and fourth["id"] == third["id"]
    assert upload.calls == 2  # created anew once, then reused
    assert [f["id"] for f in emu.files()] == [third["id"]]
    assert emu.content(third["id"]) == source.read_bytes()


def test_batch_is_resumed_while_it_exists_and_created_anew_once_when_gone(openai_files_connection: Any) -> None:
    emu, store, hook = openai_files_connection, StateStore(), OpenAIFilesHook()
    input_id = hook.upload_file(io.BytesIO(batch_lines(2)), "batch", filename="in.jsonl")["id"]
    create = Counter(lambda: hook.create_batch(input_id, ENDPOINT))

    def attempt(try_number: int) -> dict[str, Any]:
        ctx = context(try_number, store)
        batch, _ = resume_or_create(
            TaskRecord(ctx, "batch"), "batch", context=ctx, what="batch", fetch=hook.get_batch, create=create
        )
        return batch

    first = attempt(1)
    assert attempt(2)["id"] == first["id"] and create.calls == 1
    # The service has no batch by the recorded id (another project's, or a store copied between deployments).
    store.values["openai_files.batch.batch"] = {"id": "batch_gone", "try": 2}
    third = attempt(3)
    assert attempt(4)["id"] == third["id"] != first["id"]
    assert create.calls == 2
    assert sorted(b["id"] for b in emu.batches()) == sorted([first["id"], third["id"]])


def test_fine_tuning_job_is_resumed_unless_gone_or_cancelled(openai_files_connection: Any) -> None:
    emu, store, hook = openai_files_connection, StateStore(), OpenAIFilesHook()
    training = hook.upload_file(io.BytesIO(fine_tune_lines(12)), "fine-tune", filename="train.jsonl")["id"]
    hook.wait_until_processed(training, poll_interval=0.05)
    create = Counter(lambda: hook.create_fine_tuning_job(training, MODEL))

    def attempt(try_number: int) -> dict[str, Any]:
        ctx = context(try_number, store)
        job, _ = resume_or_create(
            TaskRecord(ctx, "fine_tuning_job"),
            "job",
            context=ctx,
            what="fine-tuning job",
            fetch=hook.get_fine_tuning_job,
            create=create,
            unusable=lambda job: "was cancelled" if job.get("status") == "cancelled" else None,
        )
        return job

    first = attempt(1)
    assert attempt(2)["id"] == first["id"] and create.calls == 1
    store.values["openai_files.fine_tuning_job.job"] = {"id": "ftjob-gone", "try": 2}
    third = attempt(3)
    assert attempt(4)["id"] == third["id"] and create.calls == 2
    hook.cancel_fine_tuning_job(third["id"])
    fifth = attempt(5)
    assert fifth["id"] not in (first["id"], third["id"]) and create.calls == 3
    assert len(emu.fine_tuning_jobs()) == 3


def test_without_a_state_store_a_retry_finds_the_batch_by_its_task_key(openai_files_connection: Any) -> None:
    emu, hook = openai_files_connection, OpenAIFilesHook()
    input_id = hook.upload_file(io.BytesIO(batch_lines(2)), "batch", filename="in.jsonl")["id"]

    def attempt(try_number: int) -> dict[str, Any]:
        ctx = context(try_number, None)
        from airflow_openai_files.resume import task_key, with_task_key

        batch, _ = resume_or_create(
            TaskRecord(ctx, "batch"),
            "batch",
            context=ctx,
            what="batch",
            fetch=hook.get_batch,
            create=lambda: hook.create_batch(input_id, ENDPOINT, metadata=with_task_key(None, ctx)),
            find=lambda since: hook.find_batch(TASK_KEY_METADATA, str(task_key(ctx)), since=since),
        )
        return batch

    first = attempt(1)
    assert attempt(2)["id"] == first["id"]
    assert len(emu.batches()) == 1


# -- the operators: an input recorded by an earlier try is checked before it is used -------------------------


def run_try(operator: Any, ctx: dict[str, Any]) -> None:
    """One try of a deferrable operator: it defers, or ends at once when the work is already over."""
    with contextlib.suppress(TaskDeferred):
        operator.execute(ctx)


def crash_on(hook: OpenAIFilesHook, method: str) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise OpenAIFilesError("worker lost between the upload and the create")

    setattr(hook, method, crash)


def test_batch_operator_uploads_anew_once_when_the_recorded_input_was_deleted(
    openai_files_connection: Any, tmp_path: Path
) -> None:
    emu, store = openai_files_connection, StateStore()
    source = tmp_path / "requests.jsonl"
    source.write_bytes(batch_lines(3))
    first = OpenAIBatchOperator(task_id="batch", input_file=str(source), endpoint=ENDPOINT, deferrable=True)
    crash_on(first.hook, "create_batch")
    with pytest.raises(OpenAIFilesError):
        first.execute(context(1, store))  # type: ignore[arg-type]
    [uploaded] = emu.files()
    OpenAIFilesHook().delete_file(uploaded["id"])  # e.g. a retention clean-up ran meanwhile

    for try_number in (2, 3):  # try 2 uploads again and creates; try 3 resumes that batch
        again_op = OpenAIBatchOperator(task_id="batch", input_file=str(source), endpoint=ENDPOINT, deferrable=True)
        run_try(again_op, context(try_number, store))
    [batch] = emu.batches()
    [again] = [f for f in emu.files() if f["purpose"] == "batch"]
    assert again["id"] != uploaded["id"] and batch["input_file_id"] == again["id"]
    assert emu.content(again["id"]) == source.read_bytes()


def test_fine_tuning_operator_uploads_anew_once_when_the_recorded_training_file_was_deleted(
    openai_files_connection: Any, tmp_path: Path
) -> None:
    emu, store = openai_files_connection, StateStore()
    source = tmp_path / "train.jsonl"
    source.write_bytes(fine_tune_lines(12))

    def operator() -> OpenAIFineTuningJobOperator:
        return OpenAIFineTuningJobOperator(
            task_id="fine_tune", training_file=str(source), model=MODEL, deferrable=True, poll_interval=0.05
        )

    first = operator()
    crash_on(first.hook, "create_fine_tuning_job")
    with pytest.raises(OpenAIFilesError):
        first.execute(context(1, store))  # type: ignore[arg-type]
    [uploaded] = emu.files()
    OpenAIFilesHook().delete_file(uploaded["id"])

    for try_number in (2, 3):
        run_try(operator(), context(try_number, store))
    [job] = emu.fine_tuning_jobs()
    [again] = [f for f in emu.files() if f["purpose"] == "fine-tune"]
    assert again["id"] != uploaded["id"] and job["training_file"] == again["id"]
    assert job["metadata"][TASK_KEY_METADATA]


def test_a_first_try_always_creates(openai_files_connection: Any) -> None:
    store, hook = StateStore(), OpenAIFilesHook()
    store.values["openai_files.upload.file"] = {"id": "file-recorded", "try": 1}
    created: list[dict[str, Any]] = []
    ctx = context(1, store)
    resume_or_create(
        TaskRecord(ctx, "upload"),
        "file",
        context=ctx,
        what="file",
        fetch=hook.get_file,
        create=lambda: created.append({"id": "file-new"}) or created[-1],
    )
    assert created == [{"id": "file-new"}]
    assert store.values["openai_files.upload.file"] == {"id": "file-new", "try": 1}


def test_outside_a_task_nothing_is_recorded() -> None:
    record = TaskRecord({}, "batch")
    record.set("batch", {"id": "batch_x"})
    assert not record.available and record.get("batch") is None


def test_one_retry_window_the_run_start() -> None:
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from airflow_openai_files.resume import retry_window

    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ti = SimpleNamespace(try_number=2, dag_id="d", run_id="r", task_id="t", map_index=-1)
    assert retry_window({"ti": ti, "dag_run": SimpleNamespace(start_date=start, queued_at=None)}) == start.timestamp()
    queued = {"ti": ti, "dag_run": SimpleNamespace(start_date=None, queued_at=start)}
    assert retry_window(queued) == start.timestamp()  # a run not started yet in the metadata: when it was queued
    assert retry_window({"ti": ti, "dag_run": SimpleNamespace(start_date=None, queued_at=None)}) is None
    first = SimpleNamespace(try_number=1, dag_id="d", run_id="r", task_id="t", map_index=-1)
    assert retry_window({"ti": first, "dag_run": SimpleNamespace(start_date=start, queued_at=None)}) is None
