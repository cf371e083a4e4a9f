"""Batches on the emulator beyond the happy path: strict creation, the enqueued-token limit,
faults, the process emulator's accessor and CLI flags, reset, and a 50,000-line batch."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from airflow_openai_files.emulator import Emulator, EmulatorProcess
from airflow_openai_files.emulator.__main__ import parse_args
from airflow_openai_files.emulator.batches.inputcheck import check_input
from airflow_openai_files.emulator.batches.lines import write_lines
from airflow_openai_files.emulator.batches.model import answer, count_tokens, embedding
from tests.emulator.batch_support import CHAT, chat_line, create, jsonl, upload
from tests.emulator.conftest import ValidatingSession, sdk_client


def _error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


@pytest.mark.parametrize(
    ("change", "status", "message", "param"),
    [
        ({"foo": 1}, 400, "Unrecognized request argument supplied: foo", None),
        ({"endpoint": "/v1/audio/speech"}, 400, "Invalid value: '/v1/audio/speech'. Supported values are:", "endpoint"),
        ({"completion_window": "48h"}, 400, "Invalid value: '48h'. Supported values are: '24h'.", "completion_window"),
        ({"input_file_id": None}, 400, "Missing required parameter: 'input_file_id'.", "input_file_id"),
        ({"endpoint": 5}, 400, "Invalid type for 'endpoint'.", "endpoint"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, 400, "too many properties", "metadata"),
        ({"metadata": {"k" * 65: "v"}}, 400, "string too long. Expected a string with maximum length 64", "metadata"),
        ({"metadata": {"k": "v" * 513}}, 400, "maximum length 512, but got a string with length 513", "metadata.k"),
        ({"metadata": {"k": 1}}, 400, "Invalid type for 'metadata.k'", "metadata.k"),
        (
            {"output_expires_after": {"anchor": "now", "seconds": 3600}},
            400,
            "Invalid value for 'output_expires_after[anchor]'",
            "output_expires_after[anchor]",
        ),
        (
            {"output_expires_after": {"anchor": "created_at", "seconds": 60}},
            400,
            "must be between 3600 and 2592000",
            "output_expires_after[seconds]",
        ),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 3600, "x": 1}}, 400, "supplied: x", None),
    ],
)
def test_create_is_strict(
    http: ValidatingSession,
    openai_files_emulator: Emulator,
    change: dict[str, Any],
    status: int,
    message: str,
    param: str | None,
) -> None:
    file_id = http.post("/files", files={"file": ("b.jsonl", jsonl([chat_line(1)]))}, data={"purpose": "batch"})
    payload = {"input_file_id": file_id.json()["id"], "endpoint": CHAT, "completion_window": "24h", **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    response = http.post("/batches", json=payload)
    assert response.status_code == status
    error = _error(response)
    assert message in error["message"] and error["param"] == param
    assert openai_files_emulator.batches() == []


def test_input_must_have_purpose_batch(http: ValidatingSession, openai_files_emulator: Emulator) -> None:
    tuned = http.post("/files", files={"file": ("t.jsonl", b'{"prompt": "a"}\n')}, data={"purpose": "user_data"})
    response = http.post(
        "/batches", json={"input_file_id": tuned.json()["id"], "endpoint": CHAT, "completion_window": "24h"}
    )
    assert response.status_code == 400 and _error(response)["param"] == "input_file_id"
    assert "purpose 'batch'" in _error(response)["message"]
    assert http.post("/batches", data=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert openai_files_emulator.batches() == []


def test_enqueued_token_limit_fails_the_batch(tmp_path: Path) -> None:
    lines = [chat_line(i, text="one two three four") for i in range(5)]  # 5 tokens a line with the role
    with (
        Emulator(data_dir=tmp_path / "t", enqueued_token_limit=40, batch_in_progress_seconds=100) as emu,
        sdk_client(emu) as client,
    ):
        first = client.batches.retrieve(create(client, lines).id)
        assert first.status == "in_progress"  # 25 tokens enqueued
        second = client.batches.retrieve(create(client, lines).id)
        assert second.status == "failed" and second.errors is not None
        error = (second.errors.data or [])[0]
        assert (error.code, error.line, error.param) == ("token_limit_exceeded", None, None)
        assert error.message == (
            "Enqueued token limit reached for gpt-4o-mini in organization org-emulator. Limit: 40 enqueued"
            " tokens. Please try again once some in_progress batches have been completed."
        )
        other_model = client.batches.retrieve(create(client, [chat_line(1, model="gpt-4o")]).id)
        assert other_model.status == "in_progress"  # the limit is per model
        emu.advance_clock(100)
        assert client.batches.retrieve(first.id).status == "completed"
        third = client.batches.retrieve(create(client, lines).id)
        assert third.status == "in_progress"  # room again once the first one finished


def test_token_limit_fault_at_creation(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    file_id = upload(client, [chat_line(1)])
    message = "Enqueued token limit reached for gpt-4o-mini in organization org-x. Limit: 2,000,000 enqueued tokens."
    openai_files_emulator.add_fault(
        method="POST",
        path="/v1/batches",
        status=400,
        error={"message": message, "type": "invalid_request_error", "param": None, "code": "token_limit_exceeded"},
    )
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    assert refused.value.code == "token_limit_exceeded"
    assert openai_files_emulator.batches() == []
    assert client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").status == "validating"
    assert len(openai_files_emulator.batches()) == 1


def test_server_errors_on_retrieve_heal(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    batch = create(client, [chat_line(1)])
    openai_files_emulator.add_fault(method="GET", path="/v1/batches/*", status=503, times=1)
    with pytest.raises(openai.InternalServerError):
        client.batches.retrieve(batch.id)
    assert client.batches.retrieve(batch.id).status == "completed"


def test_reset_forgets_batches(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    create(client, [chat_line(1)])
    assert len(openai_files_emulator.batches()) == 1
    openai_files_emulator.reset()
    assert openai_files_emulator.batches() == [] and openai_files_emulator.files() == []


def test_cli_flags_and_process_accessor(tmp_path: Path) -> None:
    args = parse_args(["--batch-in-progress-seconds", "7", "--enqueued-token-limit", "9"])
    assert (args.batch_in_progress_seconds, args.enqueued_token_limit, args.batch_validating_seconds) == (7, 9, None)
    with EmulatorProcess(data_dir=tmp_path / "p", batch_in_progress_seconds=100) as emu, sdk_client(emu) as client:
        assert "--batch-in-progress-seconds" in emu.command()
        batch = client.batches.retrieve(create(client, [chat_line(i) for i in range(4)]).id)
        assert batch.status == "in_progress"
        assert [(b["id"], b["status"]) for b in emu.batches()] == [(batch.id, "in_progress")]
        emu.advance_clock(100)
        assert emu.batches()[0]["status"] == "completed"  # the accessor brings batches up to the clock too


def test_input_check_and_model_units(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl([chat_line(i) for i in range(3)]) + b"\n\n")
    check = check_input(path, CHAT)
    assert (check.total, check.model, check.errors) == (3, "gpt-4o-mini", [])
    too_many = check_input(path, CHAT, max_requests=2)
    assert [e["code"] for e in too_many.errors] == ["too_many_tasks"]
    path.write_bytes(jsonl([{**chat_line(1), "body": {"model": "m", "messages": [], "stream": True}}]))
    assert [e["code"] for e in check_input(path, CHAT).errors] == ["streaming_unsupported"]
    assert count_tokens({"a": "one two", "b": ["three"]}) == 3 and count_tokens("") == 1
    assert embedding("x", 4) == embedding("x", 4) != embedding("y", 4)
    images = answer("/v1/images/generations", {"model": "gpt-image-1", "prompt": "cat"}, "seed", 0)
    assert images.status_code == 400


@pytest.mark.slow
def test_fifty_thousand_lines(tmp_path: Path, openai_files_emulator: Emulator) -> None:
    """50,000 requests (the service's maximum) through create -> completed -> download."""
    source = tmp_path / "in.jsonl"
    with open(source, "w") as handle:
        for i in range(50_000):
            handle.write(json.dumps(chat_line(i, text=f"Summarise catalogue item {i} in one line")) + "\n")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with sdk_client(openai_files_emulator, timeout=600) as client:
        began = time.monotonic()
        with open(source, "rb") as handle:
            file_id = client.files.create(file=handle, purpose="batch").id
        batch = client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
        done = client.batches.retrieve(batch.id)
        target = tmp_path / "out.jsonl"
        with client.files.with_streaming_response.content(done.output_file_id) as response:  # type: ignore[arg-type]
            response.stream_to_file(target)
        seconds = time.monotonic() - began
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(f"\n50,000-line batch: {seconds:.1f} s end to end, peak RSS growth {growth_mib:.0f} MiB")
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.completed == 50_000
    with open(target, "rb") as handle:
        assert sum(1 for _ in handle) == 50_000
    assert growth_mib < 64


def test_write_lines_drops_bytes_written_after_the_last_recorded_step(tmp_path: Path) -> None:
    """A crash between writing lines and recording the step must not duplicate lines on resume."""
    (tmp_path / "input.jsonl").write_bytes(jsonl([chat_line(i) for i in range(3)]))
    row: dict[str, Any] = {
        "id": "batch_x", "endpoint": CHAT, "done": 0, "completed": 0, "failed": 0, "input_tokens": 0,
        "output_tokens": 0, "total": 3, "in_progress_ts": 0.0, "duration": 0.0, "input_offset": 0,
        "out_bytes": 0, "err_bytes": 0,
    }  # fmt: skip
    first = write_lines(tmp_path, row, 1, None)  # type: ignore[arg-type]
    with open(tmp_path / "output.jsonl", "ab") as out:
        out.write(b'{"half written')  # the crash: bytes past what the row records
    second = write_lines(tmp_path, {**row, **first}, None, None)  # type: ignore[arg-type]
    written = [json.loads(line)["custom_id"] for line in (tmp_path / "output.jsonl").read_bytes().splitlines()]
    assert written == ["r0", "r1", "r2"]
    assert second["out_bytes"] == (tmp_path / "output.jsonl").stat().st_size and second["completed"] == 3
