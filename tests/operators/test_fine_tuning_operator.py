"""OpenAIFineTuningJobOperator end to end against the emulator: worker and triggerer waits, resume on
retry, kill, failures, the cutoff refusal, and results landed locally and on S3 (moto on loopback)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, TaskDeferred
from airflow_openai_files.exceptions import OpenAIFilesRequestError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIFineTuningJobOperator
from airflow_openai_files.resume import TASK_KEY_METADATA
from tests.support.s3 import S3Prefix
from tests.support.task_helpers import fine_tune_lines
from tests.support.triggers import trigger_event

MODEL = "gpt-4.1-mini-2025-04-14"
HEADER = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"


class StateStore:
    """Airflow 3.3's task state store, as the operator uses it (get/set/delete by key)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def context(try_number: int = 1, store: StateStore | None = None) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="ft_dag", run_id="manual__1", task_id="fine_tune", map_index=-1, try_number=try_number)
    ctx: dict[str, Any] = {"ti": ti, "dag_run": SimpleNamespace(start_date=None, queued_at=None)}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


pytestmark = pytest.mark.openai_files_emulator(processing_delay=0.3, fine_tuning_train_seconds=0.6)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train, valid = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    train.write_bytes(fine_tune_lines(12))
    valid.write_bytes(fine_tune_lines(3, tag="v"))
    return train, valid


def operator(**kwargs: Any) -> OpenAIFineTuningJobOperator:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("timeout", 60)
    return OpenAIFineTuningJobOperator(task_id="fine_tune", **kwargs)


def last_row(csv: bytes) -> list[str]:
    return csv.decode().strip().splitlines()[-1].split(",")


def check_result(result: dict[str, Any], openai_files_connection: Any) -> dict[str, Any]:
    (job,) = openai_files_connection.fine_tuning_jobs()
    assert result["job_id"] == job["id"] and result["status"] == "succeeded" == job["status"]
    assert result["fine_tuned_model"] == job["fine_tuned_model"] and result["trained_tokens"] == job["trained_tokens"]
    assert result["result_files"] == job["result_files"] and len(job["result_files"]) == 1
    content = openai_files_connection.content(job["result_files"][0])
    expected = dict(zip(HEADER.split(","), last_row(content), strict=True))
    assert {k: str(v) if v is not None else "" for k, v in result["metrics"].items()} == expected
    assert json.loads(json.dumps(result)) == result
    return job


def test_worker_wait_uploads_validates_and_lands_results(
    openai_files_connection: Any, files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, valid = files
    destination = tmp_path / "out" / "results.csv"
    destination.parent.mkdir()
    op = operator(
        training_file=str(train),
        validation_file=str(valid),
        suffix="support",
        results_destination=str(destination),
        metadata={"team": "support"},
        deferrable=False,
    )
    result = op.execute(context())
    job = check_result(result, openai_files_connection)
    assert result["results_path"] == str(destination)
    assert destination.read_bytes() == openai_files_connection.content(job["result_files"][0])
    assert result["metrics"]["valid_loss"] is not None  # a validation file was used
    uploaded = {f["id"]: f for f in openai_files_connection.files() if f["purpose"] == "fine-tune"}
    assert {uploaded[job["training_file"]]["filename"], uploaded[job["validation_file"]]["filename"]} == {
        "train.jsonl",
        "valid.jsonl",
    }
    assert job["metadata"]["team"] == "support" and len(job["metadata"][TASK_KEY_METADATA]) == 32
    assert ":support:" in result["fine_tuned_model"]


def test_triggerer_wait_with_file_id_input(openai_files_connection: Any) -> None:
    hook = OpenAIFilesHook()
    file = hook.upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="t.jsonl")
    openai_files_connection.advance_clock(1)
    op = operator(training_file=file["id"], deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    assert deferred.value.trigger.cancel_on_kill is True
    payload = trigger_event(deferred.value)
    assert payload["status"] == "success"
    result = op.resume_execution("execute_complete", {"event": payload}, context())
    check_result(result, openai_files_connection)
    assert result["results_path"] is None
    assert [f["id"] for f in openai_files_connection.files() if f["purpose"] == "fine-tune"] == [
        file["id"]
    ]  # nothing re-uploaded


@pytest.mark.parametrize("with_store", [True, False], ids=["task-state-store", "metadata-key"])
def test_retry_resumes_the_job_of_the_first_try(
    openai_files_connection: Any, files: tuple[Path, Path], with_store: bool
) -> None:
    store = StateStore() if with_store else None
    first = operator(training_file=str(files[0]), deferrable=True)
    with pytest.raises(TaskDeferred):
        first.execute(context(1, store))  # the worker is lost while the job runs
    if with_store:
        assert (
            store is not None
            and store.values["openai_files.fine_tuning_job.job"]["id"]
            == openai_files_connection.fine_tuning_jobs()[0]["id"]
        )
    second = operator(training_file=str(files[0]), deferrable=False)
    result = second.execute(context(2, store))
    check_result(result, openai_files_connection)  # exactly one job exists
    assert (
        len([f for f in openai_files_connection.files() if f["purpose"] == "fine-tune"]) == 1
    )  # and one training file
    posts = [p for m, p, _ in openai_files_connection.request_log() if m == "POST" and p == "/v1/fine_tuning/jobs"]
    assert len(posts) == 1


@pytest.mark.openai_files_emulator(fine_tuning_train_seconds=3600)
def test_kill_cancels_the_job(
    openai_files_connection: Any, files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Training that lasts an hour on the emulator's clock, which this test never advances.
    op = operator(training_file=str(files[0]), deferrable=False, poll_interval=0.05)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            op.execute(context())
        except BaseException as err:
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    while op._job_id is None:
        assert time.monotonic() < deadline and worker.is_alive(), outcome
        time.sleep(0.02)
    op.on_kill()
    worker.join(20)
    (job,) = openai_files_connection.fine_tuning_jobs()
    assert job["status"] == "cancelled"
    assert isinstance(outcome.get("error"), AirflowFailException) and "was cancelled" in str(outcome["error"])


def test_failed_job_fails_once_with_its_error(openai_files_connection: Any) -> None:
    bad = OpenAIFilesHook().upload_file(
        io.BytesIO(fine_tune_lines(9)), "fine-tune", filename="few.jsonl", validate=False
    )
    openai_files_connection.advance_clock(1)
    with pytest.raises(AirflowFailException) as info:
        operator(training_file=bad["id"], deferrable=False).execute(context())
    message = str(info.value)
    assert "failed: Training file has 9 example(s)" in message
    assert "code=invalid_n_examples" in message and "param=training_file" in message and bad["id"] in message


def test_bad_training_file_is_refused_before_upload(openai_files_connection: Any, tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(fine_tune_lines(12))  # chat examples, but a DPO job
    with pytest.raises(OpenAIFilesValidationError) as info:
        operator(training_file=str(path), method="dpo", deferrable=False).execute(context())
    assert "pairs.jsonl" in str(info.value) and "line 1" in str(info.value) and "preference" in str(info.value)
    assert openai_files_connection.files() == [] and openai_files_connection.fine_tuning_jobs() == []


@pytest.mark.openai_files_emulator(fine_tuning_available_until="2027-01-06")
def test_cutoff_refusal_fails_once_and_says_why(
    openai_files_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    openai_files_connection.advance_clock(400 * 86400)
    file = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="t.jsonl")
    with pytest.raises(OpenAIFilesRequestError) as info:
        operator(training_file=file["id"], deferrable=True).execute(context())
    assert isinstance(info.value, AirflowFailException)
    assert "OpenAI stopped new self-serve fine-tuning jobs on 2027-01-06" in str(info.value)
    assert "Azure OpenAI (flavor=azure)" in str(info.value)
    assert openai_files_connection.fine_tuning_jobs() == []


# -- results on an S3-compatible store (moto server on loopback, tests/support/s3.py) --------------------------


def test_results_land_on_s3(openai_files_connection: Any, files: tuple[Path, Path], s3: S3Prefix) -> None:
    destination = s3.url("fine_tune/2024-05-17/results.csv")
    result = operator(training_file=str(files[0]), results_destination=destination, deferrable=False).execute(context())
    job = check_result(result, openai_files_connection)
    assert result["results_path"] == destination
    assert s3.get("fine_tune/2024-05-17/results.csv") == openai_files_connection.content(job["result_files"][0])
    assert s3.keys() == ["fine_tune/2024-05-17/results.csv"]  # no temporary part left behind


@pytest.mark.openai_files_emulator(fine_tuning_train_seconds=3600)
def test_worker_timeout_can_heal_and_the_retry_resumes(
    openai_files_connection: Any, files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_openai_files._compat import AirflowException

    with pytest.raises(AirflowException) as info:
        operator(training_file=str(files[0]), deferrable=False, timeout=0.5).execute(context())
    assert not isinstance(info.value, AirflowFailException)  # Airflow may retry: the job keeps running
    assert "a retry of this task resumes it" in str(info.value)
    openai_files_connection.advance_clock(7200)
    result = operator(training_file=str(files[0]), deferrable=False).execute(context(2))
    (job,) = openai_files_connection.fine_tuning_jobs()
    assert result["job_id"] == job["id"] and job["status"] == "succeeded"
