"""The official SDK's ``AzureOpenAI`` client drives batches and fine-tuning jobs against the emulator in
Azure mode (``azure_endpoint``, ``api_version``, and ``api_key`` or ``azure_ad_token_provider``).

Covers every call a user makes (create, retrieve, list, cancel; events for jobs), Azure's refusal of
a batch or job whose file is not ``processed`` yet, and the two batch endpoint forms: Azure documents
``/chat/completions`` (create body and every line's ``url``), the SDK and Azure's v1 reference use
``/v1/chat/completions``; the emulator in Azure mode takes both.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AzureOpenAI

from airflow_openai_files.emulator import Emulator
from tests.support.task_helpers import fine_tune_lines, jsonl

KEY = "azure-resource-key-SECRET"
TOKEN = "eyJ.sdk-jobs-entra-token.SECRET"
GA = "2024-10-21"
DEPLOYMENT = "gpt-4o-mini-batch"  # Azure batch lines name the deployment as the model
BASE_MODEL = "gpt-4o-mini-2024-07-18"


def key_client(emu: Emulator) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=emu.endpoint, api_version=GA, api_key=KEY, max_retries=0)


def token_client(emu: Emulator) -> AzureOpenAI:
    return AzureOpenAI(
        azure_endpoint=emu.endpoint, api_version=GA, azure_ad_token_provider=lambda: TOKEN, max_retries=0
    )


CLIENTS = pytest.mark.parametrize("make", [key_client, token_client], ids=["api-key", "entra-token"])


pytestmark = pytest.mark.openai_files_emulator(
    flavor="azure",
    api_key=KEY,
    ad_tokens=[TOKEN],
    processing_delay=60,
    batch_validating_seconds=5,
    batch_in_progress_seconds=20,
    fine_tuning_validate_seconds=5,
    fine_tuning_queue_seconds=5,
    fine_tuning_train_seconds=30,
)


def batch_input(url: str, count: int = 3) -> bytes:
    return jsonl(
        {
            "custom_id": f"task-{i}",
            "method": "POST",
            "url": url,
            "body": {
                "model": DEPLOYMENT,
                "messages": [{"role": "user", "content": f"When was Microsoft founded? {i}"}],
            },
        }
        for i in range(count)
    )


def processed_file(emu: Emulator, client: AzureOpenAI, content: bytes, purpose: Any, name: str) -> str:
    created = client.files.create(file=(name, io.BytesIO(content)), purpose=purpose)
    assert created.status == "pending"
    emu.advance_clock(61)
    assert client.files.retrieve(created.id).status == "processed"
    return created.id


@CLIENTS
@pytest.mark.parametrize(
    "endpoint,url",
    [("/chat/completions", "/chat/completions"), ("/v1/chat/completions", "/v1/chat/completions")],
    ids=["azure-documented-form", "sdk-form"],
)
def test_batches(openai_files_emulator: Emulator, make: Any, endpoint: str, url: str) -> None:
    client = make(openai_files_emulator)
    source = batch_input(url)
    input_id = processed_file(openai_files_emulator, client, source, "batch", "requests.jsonl")
    batch = client.batches.create(
        input_file_id=input_id,
        endpoint=endpoint,
        completion_window="24h",
        metadata={"run": "parity"},
    )
    assert batch.status == "validating" and batch.endpoint == endpoint and batch.metadata == {"run": "parity"}
    openai_files_emulator.advance_clock(6)
    assert client.batches.retrieve(batch.id).status == "in_progress"
    openai_files_emulator.advance_clock(30)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    assert done.output_file_id and done.error_file_id is None
    lines = [json.loads(line) for line in client.files.content(done.output_file_id).read().splitlines()]
    assert [line["custom_id"] for line in lines] == ["task-0", "task-1", "task-2"]
    assert all(line["response"]["status_code"] == 200 for line in lines)
    assert openai_files_emulator.content(input_id) == source

    second_id = processed_file(openai_files_emulator, client, batch_input(url, 2), "batch", "more.jsonl")
    running = client.batches.create(input_file_id=second_id, endpoint=endpoint, completion_window="24h")
    cancelled = client.batches.cancel(running.id)
    assert cancelled.status in ("cancelling", "cancelled")
    openai_files_emulator.advance_clock(600)
    assert client.batches.retrieve(running.id).status == "cancelled"
    assert [b.id for b in client.batches.list()] == [running.id, batch.id]  # newest first
    assert [b.id for b in client.batches.list(limit=1).data] == [running.id]
    assert {b["id"]: b["status"] for b in openai_files_emulator.batches()} == {
        batch.id: "completed",
        running.id: "cancelled",
    }
    log = openai_files_emulator.request_log()
    assert ("POST", "/openai/batches", 200) in log and ("POST", f"/openai/batches/{running.id}/cancel", 200) in log
    assert all(path.startswith("/openai/") for _, path, _ in log)


def test_batch_line_url_must_match_endpoint(openai_files_emulator: Emulator) -> None:
    """Both forms are one endpoint on Azure, but a line for another endpoint still fails validation."""
    client = key_client(openai_files_emulator)
    lines = batch_input("/chat/completions", 2) + jsonl(
        [{"custom_id": "e", "method": "POST", "url": "/embeddings", "body": {"model": DEPLOYMENT, "input": "x"}}]
    )
    input_id = processed_file(openai_files_emulator, client, lines, "batch", "mixed.jsonl")
    batch = client.batches.create(input_file_id=input_id, endpoint="/v1/chat/completions", completion_window="24h")
    openai_files_emulator.advance_clock(6)
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None and failed.errors.data
    assert [(e.code, e.line) for e in failed.errors.data] == [("url_mismatch", 3)]
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=input_id, endpoint="/chat/nothing", completion_window="24h")  # type: ignore[arg-type]
    assert info.value.status_code == 400 and "'/chat/completions'" in str(info.value)


@CLIENTS
def test_fine_tuning_jobs(openai_files_emulator: Emulator, make: Any) -> None:
    client = make(openai_files_emulator)
    training = fine_tune_lines(20)
    training_id = processed_file(openai_files_emulator, client, training, "fine-tune", "train.jsonl")
    job = client.fine_tuning.jobs.create(
        training_file=training_id, model=BASE_MODEL, suffix="azparity", seed=7, metadata={"run": "parity"}
    )
    assert job.status in ("validating_files", "queued") and job.training_file == training_id
    openai_files_emulator.advance_clock(60)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.fine_tuned_model and "azparity" in done.fine_tuned_model
    assert done.result_files and client.files.content(done.result_files[0]).read().startswith(b"step,")
    events = list(client.fine_tuning.jobs.list_events(job.id))
    assert events and all(e.object == "fine_tuning.job.event" for e in events)
    assert any("succeeded" in e.message.lower() or "completed" in e.message.lower() for e in events)

    other = client.fine_tuning.jobs.create(training_file=training_id, model=BASE_MODEL)
    assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"
    assert [j.id for j in client.fine_tuning.jobs.list()] == [other.id, job.id]
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1).data] == [other.id]
    assert {j["id"]: j["status"] for j in openai_files_emulator.fine_tuning_jobs()} == {
        job.id: "succeeded",
        other.id: "cancelled",
    }
    assert openai_files_emulator.content(training_id) == training
    log = openai_files_emulator.request_log()
    assert ("GET", f"/openai/fine_tuning/jobs/{job.id}/events", 200) in log
    assert ("POST", f"/openai/fine_tuning/jobs/{other.id}/cancel", 200) in log


@CLIENTS
def test_pending_file_is_refused(openai_files_emulator: Emulator, make: Any) -> None:
    """Azure: "a batch or job refuses a file that is not processed" (400 naming the parameter), nothing created."""
    client = make(openai_files_emulator)
    requests = client.files.create(
        file=("requests.jsonl", io.BytesIO(batch_input("/chat/completions"))), purpose="batch"
    )
    training = client.files.create(file=("train.jsonl", io.BytesIO(fine_tune_lines(12))), purpose="fine-tune")
    assert requests.status == training.status == "pending"
    with pytest.raises(openai.BadRequestError) as batch_refused:
        client.batches.create(input_file_id=requests.id, endpoint="/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError) as job_refused:
        client.fine_tuning.jobs.create(training_file=training.id, model=BASE_MODEL)
    assert "pending" in str(batch_refused.value) and "input_file_id" in str(batch_refused.value.body)
    assert "pending" in str(job_refused.value) and "training_file" in str(job_refused.value.body)
    assert openai_files_emulator.batches() == [] and openai_files_emulator.fine_tuning_jobs() == []
    openai_files_emulator.advance_clock(31)
    assert client.files.retrieve(requests.id).status == "running"
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=requests.id, endpoint="/chat/completions", completion_window="24h")
    openai_files_emulator.advance_clock(30)
    assert client.batches.create(input_file_id=requests.id, endpoint="/chat/completions", completion_window="24h").id
    assert client.fine_tuning.jobs.create(training_file=training.id, model=BASE_MODEL).id
    assert len(openai_files_emulator.batches()) == len(openai_files_emulator.fine_tuning_jobs()) == 1


def test_openai_mode_keeps_openai_endpoints_only(tmp_path: Path) -> None:
    """The Azure form is Azure's: OpenAI mode still answers ``/chat/completions`` with its 400."""
    with Emulator(data_dir=tmp_path / "openai", api_key=KEY) as openai_emu:
        client = openai.OpenAI(base_url=openai_emu.base_url, api_key=KEY, max_retries=0)
        source = client.files.create(file=("r.jsonl", io.BytesIO(batch_input("/v1/chat/completions"))), purpose="batch")
        with pytest.raises(openai.BadRequestError) as info:
            client.batches.create(input_file_id=source.id, endpoint="/chat/completions", completion_window="24h")  # type: ignore[arg-type]
        assert info.value.body["param"] == "endpoint"  # type: ignore[index]
        assert openai_emu.batches() == []
