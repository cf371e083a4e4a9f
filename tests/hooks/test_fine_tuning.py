"""FineTuningAPIMixin against the emulator (and requests-mock for shapes the emulator cannot make)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests_mock

from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesRequestError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.hooks.fine_tuning import is_cutoff_refusal
from airflow_openai_files.resume import REQUEST_KEY_METADATA
from tests.conftest import BASE_URL
from tests.support.task_helpers import fine_tune_lines

MODEL = "gpt-4.1-mini-2025-04-14"
CSV = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,2.5,0.1,,\n2,1.25,0.5,1.5,0.4\n"


pytestmark = pytest.mark.openai_files_emulator(fine_tuning_train_seconds=0.5)


def quiet_hook(**kwargs: Any) -> OpenAIFilesHook:
    hook = OpenAIFilesHook(**kwargs)
    hook.waits = []  # type: ignore[attr-defined]
    hook.retry_policy.sleep = hook.waits.append  # type: ignore[attr-defined]  # record waits, never sleep
    return hook


def upload(hook: OpenAIFilesHook, body: bytes | None = None) -> str:
    file = hook.upload_file(io.BytesIO(body or fine_tune_lines()), "fine-tune", filename="train.jsonl", validate=False)
    return str(file["id"])


def posts(openai_files_connection: Any) -> int:
    return sum(
        1
        for method, path, _ in openai_files_connection.request_log()
        if method == "POST" and path == "/v1/fine_tuning/jobs"
    )


def test_create_get_list_events_cancel(openai_files_connection: Any) -> None:
    hook = quiet_hook()
    training = upload(hook)
    job = hook.create_fine_tuning_job(
        training,
        MODEL,
        method="supervised",
        hyperparameters={"n_epochs": 2},
        suffix="acme",
        seed=7,
        metadata={"team": "support"},
    )
    assert job["status"] == "validating_files" and job["training_file"] == training
    assert job["metadata"]["team"] == "support" and len(job["metadata"][REQUEST_KEY_METADATA]) == 32
    assert job["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2 and job["seed"] == 7
    assert [j["id"] for j in hook.list_fine_tuning_jobs(metadata={"team": "support"})] == [job["id"]]
    assert list(hook.list_fine_tuning_jobs(metadata={"team": "other"})) == []
    cancelled = hook.cancel_fine_tuning_job(job["id"])
    assert cancelled["status"] == "cancelled" == hook.get_fine_tuning_job(job["id"])["status"]
    assert hook.cancel_fine_tuning_job(job["id"])["status"] == "cancelled"  # ended: a no-op, not an error
    assert [j["status"] for j in openai_files_connection.fine_tuning_jobs()] == ["cancelled"]


def test_list_and_events_follow_every_page(openai_files_connection: Any) -> None:
    hook = quiet_hook()
    training = upload(hook)
    created = [hook.create_fine_tuning_job(training, MODEL, metadata={"n": str(i)})["id"] for i in range(5)]
    assert [j["id"] for j in hook.list_fine_tuning_jobs(page_size=2)] == created[::-1]
    openai_files_connection.advance_clock(3600)
    events = list(hook.list_fine_tuning_events(created[0], page_size=3))
    assert len(events) > 6 and len({e["id"] for e in events}) == len(events)
    assert events[0]["message"] == "The job has successfully completed"  # newest first
    assert any(e["type"] == "metrics" and "train_loss" in e["data"] for e in events)
    pages = [p for m, p, _ in openai_files_connection.request_log() if m == "GET" and p.endswith("/events")]
    assert len(pages) == -(-len(events) // 3)


def test_dropped_answer_does_not_create_a_second_job(openai_files_connection: Any) -> None:
    hook = quiet_hook()
    training = upload(hook)
    openai_files_connection.add_fault(method="POST", path="/v1/fine_tuning/jobs", times=1, action="close_after_body")
    job = hook.create_fine_tuning_job(training, MODEL)
    jobs = openai_files_connection.fine_tuning_jobs()
    assert [j["id"] for j in jobs] == [job["id"]]
    assert posts(openai_files_connection) == 1  # found by its request key: the creation was not sent again
    assert hook.waits  # type: ignore[attr-defined]


def test_server_error_before_creation_is_retried_once_created(openai_files_connection: Any) -> None:
    hook = quiet_hook()
    training = upload(hook)
    openai_files_connection.add_fault(method="POST", path="/v1/fine_tuning/jobs", times=2, status=503)
    job = hook.create_fine_tuning_job(training, MODEL)
    assert [j["id"] for j in openai_files_connection.fine_tuning_jobs()] == [job["id"]]
    assert len(hook.waits) == 2  # type: ignore[attr-defined]


def test_bad_request_is_final_and_not_retried(openai_files_connection: Any) -> None:
    hook = quiet_hook()
    with pytest.raises(OpenAIFilesRequestError) as info:
        hook.create_fine_tuning_job("file-doesnotexist", MODEL)
    assert info.value.http_status == 400 and info.value.param == "training_file"
    assert posts(openai_files_connection) == 1 and openai_files_connection.fine_tuning_jobs() == []


@pytest.mark.openai_files_emulator(fine_tuning_available_until="2027-01-06")
def test_cutoff_refusal_is_final_and_says_why(
    openai_files_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    openai_files_connection.advance_clock(400 * 86400)  # past the cutoff on the emulator's clock, whatever today is
    hook = quiet_hook()
    training = upload(hook)
    with pytest.raises(OpenAIFilesRequestError) as info:
        hook.create_fine_tuning_job(training, MODEL)
    message = str(info.value)
    assert "OpenAI stopped new self-serve fine-tuning jobs on 2027-01-06" in message
    assert "Azure OpenAI (flavor=azure)" in message and "The service said:" in message
    assert info.value.http_status == 403
    assert posts(openai_files_connection) == 1 and hook.waits == []  # type: ignore[attr-defined]
    assert openai_files_connection.fine_tuning_jobs() == []


def test_openai_403_after_cutoff_date_is_recognised() -> None:
    err = OpenAIFilesError("Creating fine-tuning job failed with HTTP 403: You do not have access", http_status=403)
    after = 1_800_000_000.0  # 2027-01-15
    assert is_cutoff_refusal(err, base_url="https://api.openai.com/v1", now=after)
    assert not is_cutoff_refusal(err, base_url="https://api.openai.com/v1", now=1_700_000_000.0)
    assert not is_cutoff_refusal(err, base_url="https://acme.openai.azure.com/openai/v1", now=after)
    worded = OpenAIFilesError("Fine-tuning is no longer available for new jobs", http_status=400)
    assert is_cutoff_refusal(worded)
    assert not is_cutoff_refusal(OpenAIFilesError("invalid training_file: file-x", http_status=400))


@pytest.mark.parametrize("encode", [False, True], ids=["plain", "base64"])
def test_results_plain_or_base64_land_as_csv(mock_connection: str, tmp_path: Path, encode: bool) -> None:
    body = base64.b64encode(CSV) if encode else CSV
    target = tmp_path / "results.csv"
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/files/file-res", json={"id": "file-res", "bytes": len(body)})
        mocker.get(f"{BASE_URL}/files/file-res/content", content=body)
        path, metrics = quiet_hook().fine_tuning_results("file-res", target)
        _, streamed = quiet_hook().fine_tuning_results("file-res")
    assert path == str(target) and target.read_bytes() == CSV
    assert (
        metrics
        == streamed
        == {"step": 2, "train_loss": 1.25, "train_accuracy": 0.5, "valid_loss": 1.5, "valid_mean_token_accuracy": 0.4}
    )


def test_input_is_checked_before_any_request(mock_connection: str) -> None:
    hook = quiet_hook()
    with requests_mock.Mocker() as mocker:
        for kwargs, match in [
            ({"training_file": "../x"}, "Invalid file id"),
            ({"method": "sft"}, "Unknown fine-tuning method"),
            ({"suffix": "x" * 65}, "suffix"),
            ({"metadata": {f"k{i}": "v" for i in range(16)}}, "at most 15 are free"),
            ({"model": " "}, "model"),
        ]:
            args = {"training_file": "file-abc", "model": MODEL, **kwargs}
            with pytest.raises(OpenAIFilesValidationError, match=match):
                hook.create_fine_tuning_job(**args)
        assert mocker.call_count == 0


def test_method_hyperparameters_go_where_the_api_takes_them(mock_connection: str) -> None:
    with requests_mock.Mocker() as mocker:
        mocker.post(f"{BASE_URL}/fine_tuning/jobs", json={"id": "ftjob-1", "status": "validating_files"})
        quiet_hook().create_fine_tuning_job("file-abc", MODEL, method="dpo", hyperparameters={"beta": 0.1})
        quiet_hook().create_fine_tuning_job("file-abc", MODEL, hyperparameters={"n_epochs": 3})
        dpo, supervised = (json.loads(r.body) for r in mocker.request_history)
    assert dpo["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}} and "hyperparameters" not in dpo
    assert supervised["hyperparameters"] == {"n_epochs": 3} and "method" not in supervised
