"""OpenAIBatchOperator against the emulator: worker polling, deferral, retries, kills, failure policy, landing."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, TaskDeferred
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIBatchOperator
from airflow_openai_files.results import join_by_custom_id
from airflow_openai_files.resume import TASK_KEY_METADATA
from airflow_openai_files.triggers import OpenAIBatchTrigger
from tests.support.files import batch_lines
from tests.support.s3 import S3Prefix
from tests.support.task_helpers import make_context
from tests.support.triggers import run_trigger

ENDPOINT = "/v1/chat/completions"


def requests_file(tmp_path: Path, count: int = 5, bad: tuple[int, ...] = ()) -> Path:
    """A batch input; the lines in ``bad`` have an empty ``messages`` list, which the endpoint refuses (400)."""
    path = tmp_path / "requests.jsonl"
    with open(path, "wb") as handle:
        for i in range(count):
            messages = [] if i in bad else [{"role": "user", "content": f"Question {i}"}]
            line = {
                "custom_id": f"q{i}",
                "method": "POST",
                "url": ENDPOINT,
                "body": {"model": "m", "messages": messages},
            }
            handle.write(json.dumps(line).encode() + b"\n")
    return path


def operator(**kwargs: Any) -> OpenAIBatchOperator:
    kwargs.setdefault("task_id", "batch")
    kwargs.setdefault("endpoint", ENDPOINT)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("deferrable", False)
    return OpenAIBatchOperator(**kwargs)


class FakeStore:
    """The task state store of Airflow 3.3 (``get``/``set``/``delete``), kept across tries like the real one."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def task_context(try_number: int = 1, store: FakeStore | None = None) -> Any:
    context = make_context(try_number=try_number)
    context["ti"] = SimpleNamespace(
        try_number=try_number, task_id="batch", dag_id="batch_dag", run_id="manual__1", map_index=-1
    )
    if store is not None:
        context["task_state_store"] = store
    return context


# -- waiting modes ----------------------------------------------------------------------------------------


@pytest.mark.openai_files_emulator(batch_validating_seconds=0.2, batch_in_progress_seconds=0.6)
def test_worker_polling_lands_output_and_logs_status_changes(
    openai_files_connection: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = openai_files_connection
    source = requests_file(tmp_path)
    out = tmp_path / "landed" / "out.jsonl"
    out.parent.mkdir()
    op = operator(input_file=str(source), output_destination=str(out), error_destination=str(tmp_path / "err.jsonl"))
    with caplog.at_level("INFO"):
        result = op.execute(task_context())
    [batch] = emu.batches()
    assert result["batch_id"] == batch["id"] and result["status"] == "completed"
    assert result["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert result["output_path"] == str(out) and result["error_path"] is None  # no error file: nothing landed
    assert out.read_bytes() == emu.content(batch["output_file_id"])
    assert emu.content(batch["input_file_id"]) == source.read_bytes()
    assert batch["metadata"][TASK_KEY_METADATA]
    logged = caplog.text + capsys.readouterr().out
    assert logged.index("is validating") < logged.index("is in_progress") < logged.index("is completed")
    pairs = list(join_by_custom_id(source, out))
    assert [(req["custom_id"], res and res["custom_id"]) for req, res in pairs] == [
        (f"q{i}", f"q{i}") for i in range(5)
    ]


def test_file_id_input_without_destinations_returns_ids(openai_files_connection: Any) -> None:
    emu = openai_files_connection
    import io

    uploaded = OpenAIFilesHook().upload_file(io.BytesIO(batch_lines(3)), "batch", filename="in.jsonl")
    result = operator(input_file=uploaded["id"]).execute(task_context())
    assert result["input_file_id"] == uploaded["id"]
    assert result["output_file_id"] == emu.batches()[0]["output_file_id"]
    assert result["output_path"] is None and result["error_path"] is None
    assert len(emu.files()) == 2  # the input and the output, both left on the service


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=0.5)
def test_deferrable_defers_then_trigger_and_resume(openai_files_connection: Any, tmp_path: Path) -> None:
    emu = openai_files_connection
    op = operator(input_file=str(requests_file(tmp_path)), deferrable=True, output_destination=str(tmp_path / "o"))
    with pytest.raises(TaskDeferred) as info:
        op.execute(task_context())
    trigger = info.value.trigger
    assert isinstance(trigger, OpenAIBatchTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_openai_files.triggers.OpenAIBatchTrigger"
    assert "sk-" not in json.dumps(kwargs)
    events = run_trigger(OpenAIBatchTrigger(**kwargs))  # as the triggerer re-creates it
    assert [e["status"] for e in events] == ["success"]
    assert events[0]["batch"]["status"] == "completed"
    result = op.resume_execution("execute_complete", {"event": events[0]}, task_context())
    assert result["status"] == "completed"
    assert (tmp_path / "o").read_bytes() == emu.content(result["output_file_id"])


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=3600)
def test_a_deferred_timeout_logs_the_last_known_counts_on_resume(
    openai_files_connection: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    op = operator(input_file=str(requests_file(tmp_path)), deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        op.execute(task_context())
    kwargs = {**info.value.trigger.serialize()[1], "timeout": 0.3, "poll_interval": 0.05}
    events = run_trigger(OpenAIBatchTrigger(**kwargs))
    assert [e["status"] for e in events] == ["timeout"]
    assert events[0]["request_counts"] == {"total": 5, "completed": 0, "failed": 0}
    with caplog.at_level("INFO"), pytest.raises(AirflowFailException, match="Timed out"):
        op.resume_execution("execute_complete", {"event": events[0]}, task_context())
    logged = caplog.text + capsys.readouterr().out
    assert f"Last known state: Batch {events[0]['batch_id']} is in_progress: 0/5 requests done" in logged


# -- retries and kills ------------------------------------------------------------------------------------


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=1.0)
@pytest.mark.parametrize("with_store", [True, False], ids=["task-state-store", "metadata-lookup"])
def test_retry_resumes_the_same_batch(openai_files_connection: Any, tmp_path: Path, with_store: bool) -> None:
    emu = openai_files_connection
    store = FakeStore() if with_store else None
    source = requests_file(tmp_path)
    first = operator(input_file=str(source))
    calls = {"n": 0}
    real_get = first.hook.get_batch

    def crash_once(batch_id: str) -> dict[str, Any]:
        calls["n"] += 1
        raise OpenAIFilesError("connection lost (worker about to die)")

    first.hook.get_batch = crash_once  # type: ignore[method-assign]
    with pytest.raises(OpenAIFilesError):
        first.execute(task_context(1, store))
    assert calls["n"] == 1 and len(emu.batches()) == 1
    first.hook.get_batch = real_get  # type: ignore[method-assign]

    second = operator(input_file=str(source))
    result = second.execute(task_context(2, store))
    assert len(emu.batches()) == 1  # exactly one batch: the retry resumed it
    assert result["batch_id"] == emu.batches()[0]["id"] and result["status"] == "completed"
    inputs = [f for f in emu.files() if f["purpose"] == "batch"]
    assert len(inputs) == 1  # and the input was not uploaded twice
    if with_store:
        assert store is not None and store.values["openai_files.batch.batch"]["id"] == result["batch_id"]


def test_retry_after_a_crash_before_create_reuses_the_upload(openai_files_connection: Any, tmp_path: Path) -> None:
    emu = openai_files_connection
    source = requests_file(tmp_path)
    first = operator(input_file=str(source))

    def crash(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise OpenAIFilesError("worker lost between upload and create")

    first.hook.create_batch = crash  # type: ignore[method-assign]
    with pytest.raises(OpenAIFilesError):
        first.execute(task_context(1))  # no state store: only the service's listings can tell
    assert len([f for f in emu.files() if f["purpose"] == "batch"]) == 1 and emu.batches() == []
    result = operator(input_file=str(source)).execute(task_context(2))
    assert len([f for f in emu.files() if f["purpose"] == "batch"]) == 1  # the earlier upload was reused
    assert [b["id"] for b in emu.batches()] == [result["batch_id"]]


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=3600, batch_cancelling_seconds=0)
def test_kill_cancels_the_batch(openai_files_connection: Any, tmp_path: Path) -> None:
    emu = openai_files_connection
    op = operator(input_file=str(requests_file(tmp_path)), poll_interval=0.1)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = op.execute(task_context())
        except BaseException as err:  # the kill ends the task with a failure
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    while not (emu.batches() and emu.batches()[0]["status"] == "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
    op.on_kill()
    worker.join(20)
    assert emu.batches()[0]["status"] == "cancelled"
    assert isinstance(outcome.get("error"), AirflowFailException)
    assert "ended cancelled" in str(outcome["error"])


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=3600)
def test_timeout_cancels_then_fails(openai_files_connection: Any, tmp_path: Path) -> None:
    emu = openai_files_connection
    op = operator(input_file=str(requests_file(tmp_path)), timeout=0.5)
    with pytest.raises(AirflowFailException, match=r"Timed out.*the batch was cancelled"):
        op.execute(task_context())
    assert emu.batches()[0]["status"] in ("cancelling", "cancelled")


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=3600)
def test_timeout_without_cancel_leaves_the_batch(openai_files_connection: Any, tmp_path: Path) -> None:
    emu = openai_files_connection
    op = operator(input_file=str(requests_file(tmp_path)), timeout=0.3, cancel_on_kill=False)
    with pytest.raises(AirflowFailException, match="Timed out"):
        op.execute(task_context())
    assert emu.batches()[0]["status"] == "in_progress"


# -- failure policy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_failed", "passes"), [(0, False), (1, False), (2, True), (0.3, False), (0.4, True)], ids=str
)
def test_partial_failures_against_max_failed_requests(
    openai_files_connection: Any, tmp_path: Path, max_failed: Any, passes: bool
) -> None:
    emu = openai_files_connection
    errors = tmp_path / "errors.jsonl"
    op = operator(
        input_file=str(requests_file(tmp_path, 5, bad=(1, 3))),
        error_destination=str(errors),
        max_failed_requests=max_failed,
    )
    if passes:
        result = op.execute(task_context())
        assert result["request_counts"] == {"total": 5, "completed": 3, "failed": 2}
        assert result["error_path"] == str(errors)
    else:
        with pytest.raises(AirflowFailException, match=r"2 of 5 requests without an answer"):
            op.execute(task_context())
    # Either way the error file was landed (before failing), with the two refused requests.
    batch = emu.batches()[0]
    assert errors.read_bytes() == emu.content(batch["error_file_id"])
    assert sorted(json.loads(line)["custom_id"] for line in errors.read_text().splitlines()) == ["q1", "q3"]


def test_failed_batch_lists_the_services_errors(openai_files_connection: Any, tmp_path: Path) -> None:
    import io

    bad = batch_lines(2).replace(b"/v1/chat/completions", b"/v1/embeddings", 1)  # line 1 targets another url
    uploaded = OpenAIFilesHook().upload_file(io.BytesIO(bad), "batch", filename="bad.jsonl", validate=False)
    with pytest.raises(AirflowFailException, match=r"failed: line 1: url_mismatch"):
        operator(input_file=uploaded["id"]).execute(task_context())


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=48 * 3600)
def test_expired_batch_delivers_partial_results(openai_files_connection: Any, tmp_path: Path) -> None:
    emu = openai_files_connection
    kwargs: dict[str, Any] = {
        "input_file": str(requests_file(tmp_path, 4)),
        "output_destination": str(tmp_path / "out.jsonl"),
        "error_destination": str(tmp_path / "err.jsonl"),
        "max_failed_requests": 1.0,
    }
    with pytest.raises(TaskDeferred):  # try 1 creates the batch and defers; its triggerer then dies
        operator(deferrable=True, **kwargs).execute(task_context(1))
    emu.advance_clock(25 * 3600)  # the 24h window passes with about half of the requests answered
    result = operator(**kwargs).execute(task_context(2))  # try 2 finds the batch by its task key
    assert len(emu.batches()) == 1
    assert result["status"] == "expired"
    counts = result["request_counts"]
    assert counts["total"] == 4 and 0 < counts["completed"] < 4
    errors = [json.loads(line) for line in (tmp_path / "err.jsonl").read_text().splitlines()]
    assert len(errors) == 4 - counts["completed"]
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == counts["completed"]


@pytest.mark.parametrize("argument", ["output_destination", "error_destination"])
def test_unwritable_destination_fails_before_any_request(
    openai_files_connection: Any, tmp_path: Path, argument: str
) -> None:
    emu = openai_files_connection
    missing = tmp_path / "missing" / "o.jsonl"
    op = operator(input_file=str(requests_file(tmp_path)), **{argument: str(missing)})
    with pytest.raises(OpenAIFilesValidationError) as info:
        op.execute(task_context())
    # Named by the argument the user passed, not "Download destination"; nothing sent, no folder created.
    assert str(info.value).startswith(f"{argument} '{missing}': parent directory does not exist ({missing.parent})")
    assert "Download destination" not in str(info.value)
    assert emu.request_log() == [] and not missing.parent.exists()


@pytest.mark.openai_files_emulator(batch_in_progress_seconds=0.3)
def test_a_destination_that_appears_while_the_batch_runs_is_named_by_its_argument(
    openai_files_connection: Any, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    op = operator(input_file=str(requests_file(tmp_path)), output_destination=str(target))
    real_get = op.hook.get_batch

    def get_batch(batch_id: str) -> dict[str, Any]:
        target.write_text("written by someone else meanwhile")
        return real_get(batch_id)

    op.hook.get_batch = get_batch  # type: ignore[method-assign]
    with pytest.raises(
        OpenAIFilesValidationError, match="^" + re.escape(f"output_destination '{target}' already exists")
    ):
        op.execute(task_context())


def test_bad_input_fails_before_any_request(openai_files_connection: Any, tmp_path: Path) -> None:
    emu = openai_files_connection
    source = requests_file(tmp_path)
    text = source.read_text().splitlines()
    text[2] = text[2].replace('"model": "m"', '"model": "other"')
    source.write_text("\n".join(text) + "\n")
    with pytest.raises(OpenAIFilesValidationError, match=r"requests.jsonl, line 3: one model per batch"):
        operator(input_file=str(source)).execute(task_context())
    assert emu.request_log() == []


def test_arguments_checked_at_parse_time() -> None:
    with pytest.raises(OpenAIFilesValidationError, match="Unknown batch endpoint"):
        operator(input_file="file-abc", endpoint="/v1/nope")
    with pytest.raises(OpenAIFilesValidationError, match="max_failed_requests"):
        operator(input_file="file-abc", max_failed_requests=1.5)
    op = operator(input_file="file-abc")
    assert op.timeout == timedelta(hours=25)  # completion window plus a margin
    assert op.multiple_outputs is True


# -- landing on an S3-compatible server -------------------------------------------------------------------


def test_results_land_on_s3(openai_files_connection: Any, tmp_path: Path, s3: S3Prefix) -> None:
    from airflow.sdk import ObjectStoragePath

    emu = openai_files_connection
    source = ObjectStoragePath(s3.url("in/requests.jsonl"))
    source.write_bytes(requests_file(tmp_path, 4, bad=(2,)).read_bytes())
    result = operator(
        input_file=s3.url("in/requests.jsonl"),
        output_destination=ObjectStoragePath(s3.url("out/output.jsonl")),
        error_destination=s3.url("out/errors.jsonl"),
        max_failed_requests=1,
    ).execute(task_context())
    batch = emu.batches()[0]
    assert s3.get("out/output.jsonl") == emu.content(batch["output_file_id"])
    assert s3.get("out/errors.jsonl") == emu.content(batch["error_file_id"])
    assert result["output_path"].endswith(s3.key("out/output.jsonl"))
    landed, errors = ObjectStoragePath(s3.url("out/output.jsonl")), ObjectStoragePath(s3.url("out/errors.jsonl"))
    pairs = dict(
        (req["custom_id"], res and res["response"]["status_code"])
        for req, res in join_by_custom_id(source, landed, errors)
    )
    assert pairs == {"q0": 200, "q1": 200, "q2": 400, "q3": 200}
