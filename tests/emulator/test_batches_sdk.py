"""The official openai SDK drives ``client.batches`` against the emulator through every state:
completed, failed, expired and cancelled batches, on the emulator's clock (no sleeps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from airflow_openai_files.emulator import Emulator
from tests.emulator.batch_support import CHAT, by_custom_id, chat_line, create, read_lines, upload
from tests.emulator.conftest import VALIDATED, sdk_client

#: Validating 10 s, in_progress 100 s (whatever the size), finalizing 5 s, cancelling 0 s.
SLOW = pytest.mark.openai_files_emulator(
    batch_validating_seconds=10, batch_in_progress_seconds=100, batch_finalizing_seconds=5
)


@SLOW
def test_lifecycle_states_timestamps_and_results(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    created = create(client, [chat_line(i) for i in range(10)], metadata={"pipeline": "nightly"})
    assert created.status == "validating"
    assert created.id.startswith("batch_") and len(created.id) == len("batch_") + 24
    assert created.request_counts is not None and created.request_counts.total == 0
    assert (created.endpoint, created.completion_window, created.metadata) == (CHAT, "24h", {"pipeline": "nightly"})
    assert created.expires_at is None and created.in_progress_at is None
    t0 = created.created_at

    assert client.batches.retrieve(created.id).status == "validating"
    openai_files_emulator.advance_clock(10)
    running = client.batches.retrieve(created.id)
    assert running.status == "in_progress" and running.in_progress_at == t0 + 10
    assert running.model == "gpt-4o-mini" and running.expires_at == t0 + 24 * 3600
    assert running.request_counts is not None and running.request_counts.total == 10
    assert running.output_file_id is None and running.finalizing_at is None

    openai_files_emulator.advance_clock(50)  # half of the in_progress time: half of the lines answered
    half = client.batches.retrieve(created.id)
    assert half.status == "in_progress"
    assert half.request_counts is not None and half.request_counts.completed == 5

    openai_files_emulator.advance_clock(50)
    finalizing = client.batches.retrieve(created.id)
    assert finalizing.status == "finalizing" and finalizing.finalizing_at == t0 + 110
    assert finalizing.output_file_id is None

    openai_files_emulator.advance_clock(5)
    done = client.batches.retrieve(created.id)
    assert done.status == "completed" and done.completed_at == t0 + 115
    assert (done.failed_at, done.expired_at, done.cancelled_at, done.cancelling_at, done.errors) == (None,) * 5
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (10, 10, 0)
    assert done.error_file_id is None and done.output_file_id is not None

    out = client.files.retrieve(done.output_file_id)
    assert (out.purpose, out.filename) == ("batch_output", f"{done.id}_output.jsonl")
    assert out.id in {f.id for f in client.files.list(purpose="batch_output")}
    lines = by_custom_id(read_lines(client, done.output_file_id))
    assert set(lines) == {f"r{i}" for i in range(10)}
    line = lines["r3"]
    assert line["id"].startswith("batch_req_") and line["error"] is None
    assert line["response"]["status_code"] == 200 and line["response"]["request_id"]
    body = line["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"]["content"] == "Emulated answer to: hello number 3"
    # usage adds up: the batch's figures are the sums of the lines'
    assert done.usage is not None
    assert done.usage.input_tokens == sum(x["response"]["body"]["usage"]["prompt_tokens"] for x in lines.values())
    assert done.usage.output_tokens == sum(x["response"]["body"]["usage"]["completion_tokens"] for x in lines.values())
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens > 0
    assert [b["id"] for b in openai_files_emulator.batches()] == [done.id]
    assert "Batch" in VALIDATED  # every answer above was checked against the spec's Batch schema


def test_output_is_deterministic_and_rejected_lines_go_to_the_error_file(client: openai.OpenAI) -> None:
    lines = [chat_line(i) for i in range(4)]
    lines.append({"custom_id": "no-messages", "method": "POST", "url": CHAT, "body": {"model": "gpt-4o-mini"}})
    first = client.batches.retrieve(create(client, lines).id)
    second = client.batches.retrieve(create(client, lines).id)
    assert first.status == second.status == "completed"
    assert first.request_counts is not None
    assert (first.request_counts.completed, first.request_counts.failed) == (4, 1)
    a, b = (
        by_custom_id(read_lines(client, first.output_file_id)),
        by_custom_id(read_lines(client, second.output_file_id)),
    )
    assert {k: v["response"]["body"]["choices"] for k, v in a.items()} == {
        k: v["response"]["body"]["choices"] for k, v in b.items()
    }
    errors = read_lines(client, first.error_file_id)
    assert [e["custom_id"] for e in errors] == ["no-messages"]
    assert errors[0]["error"] is None and errors[0]["response"]["status_code"] == 400
    assert errors[0]["response"]["body"]["error"]["param"] == "messages"
    assert client.files.retrieve(first.error_file_id).filename == f"{first.id}_error.jsonl"  # type: ignore[arg-type]


def test_every_request_rejected_means_no_output_file(client: openai.OpenAI) -> None:
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}} for i in range(3)
    ]
    done = client.batches.retrieve(create(client, lines, endpoint="/v1/embeddings").id)
    assert done.status == "completed"
    assert done.output_file_id is None and done.error_file_id is not None
    assert done.request_counts is not None and (done.request_counts.completed, done.request_counts.failed) == (0, 3)
    assert len(read_lines(client, done.error_file_id)) == 3


ENDPOINT_BODIES: list[tuple[str, dict[str, Any], str | None]] = [
    ("/v1/responses", {"model": "gpt-5-mini", "input": "Tell me a joke"}, "response"),
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"}, "text_completion"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": ["alpha", "beta"], "dimensions": 8}, "list"),
    ("/v1/moderations", {"model": "omni-moderation-latest", "input": "hello"}, None),
]


@pytest.mark.parametrize(("endpoint", "body", "kind"), ENDPOINT_BODIES)
def test_stand_in_model_answers_each_endpoint(
    client: openai.OpenAI, endpoint: str, body: dict[str, Any], kind: str | None
) -> None:
    lines = [{"custom_id": "x", "method": "POST", "url": endpoint, "body": body}]
    done = client.batches.retrieve(create(client, lines, endpoint=endpoint).id)
    assert done.status == "completed" and done.error_file_id is None
    answer = read_lines(client, done.output_file_id)[0]["response"]["body"]
    if kind is not None:
        assert answer["object"] == kind
    assert answer["model"] == body["model"]
    if endpoint == "/v1/embeddings":
        vectors = [item["embedding"] for item in answer["data"]]
        assert [len(v) for v in vectors] == [8, 8] and vectors[0] != vectors[1]
        assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-4
        assert answer["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    elif endpoint == "/v1/responses":
        assert answer["output"][0]["content"][0]["text"] == "Emulated answer to: Tell me a joke"
        assert answer["usage"]["input_tokens"] == 4
    elif endpoint == "/v1/moderations":
        assert answer["results"][0]["flagged"] is False


def test_failed_at_validation(client: openai.OpenAI) -> None:
    lines: list[Any] = [chat_line(1), b"{not json", chat_line(1), chat_line(4, model="gpt-4o")]
    lines.append({**chat_line(5), "url": "/v1/embeddings"})
    lines.append({**chat_line(6), "method": "GET"})
    lines.append({"method": "POST", "url": CHAT, "body": {"model": "gpt-4o-mini", "messages": []}})
    failed = client.batches.retrieve(create(client, lines).id)
    assert failed.status == "failed" and failed.failed_at is not None and failed.in_progress_at is None
    assert failed.output_file_id is None and failed.error_file_id is None
    assert failed.errors is not None and failed.errors.object == "list"
    found = [(e.code, e.line) for e in failed.errors.data or []]
    assert found == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 3),
        ("model_mismatch", 4),
        ("url_mismatch", 5),
        ("invalid_method", 6),
        ("missing_required_parameter", 7),
    ]
    assert (
        failed.errors.data is not None and failed.errors.data[0].message == "This line is not parseable as valid JSON."
    )


def test_empty_and_too_many_requests(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    empty = client.batches.create(
        input_file_id=client.files.create(file=("e.jsonl", b"\n"), purpose="batch").id,
        endpoint=CHAT,
        completion_window="24h",
    )
    failed = client.batches.retrieve(empty.id)
    assert failed.status == "failed" and failed.errors is not None
    assert [e.code for e in failed.errors.data or []] == ["empty_file"]


def test_expired_delivers_finished_lines_and_expires_the_rest(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path / "e", batch_in_progress_seconds=48 * 3600) as emu, sdk_client(emu) as client:
        batch = create(client, [chat_line(i) for i in range(10)])
        emu.advance_clock(12 * 3600)
        assert client.batches.retrieve(batch.id).status == "in_progress"
        emu.advance_clock(12 * 3600)
        expired = client.batches.retrieve(batch.id)
        assert expired.status == "expired" and expired.expired_at == expired.expires_at
        assert expired.request_counts is not None
        assert (expired.request_counts.total, expired.request_counts.completed) == (10, 5)
        assert expired.request_counts.failed == 5
        delivered = read_lines(client, expired.output_file_id)
        assert sorted(x["custom_id"] for x in delivered) == [f"r{i}" for i in range(5)]
        rest = read_lines(client, expired.error_file_id)
        assert sorted(x["custom_id"] for x in rest) == [f"r{i}" for i in range(5, 10)]
        assert {x["error"]["code"] for x in rest} == {"batch_expired"} and rest[0]["response"] is None


def test_cancel_gives_partial_results(tmp_path: Path) -> None:
    with (
        Emulator(data_dir=tmp_path / "c", batch_in_progress_seconds=100, batch_cancelling_seconds=30) as emu,
        sdk_client(emu) as client,
    ):
        batch = create(client, [chat_line(i) for i in range(10)])
        emu.advance_clock(35)
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
        assert cancelling.request_counts is not None and cancelling.request_counts.completed == 3
        emu.advance_clock(29)
        assert client.batches.retrieve(batch.id).status == "cancelling"
        assert client.batches.cancel(batch.id).status == "cancelling"  # a second cancel changes nothing
        emu.advance_clock(1)
        cancelled = client.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled" and cancelled.cancelled_at == cancelled.cancelling_at + 30  # type: ignore[operator]
        assert cancelled.request_counts is not None
        assert (cancelled.request_counts.completed, cancelled.request_counts.failed) == (3, 7)
        assert sorted(x["custom_id"] for x in read_lines(client, cancelled.output_file_id)) == ["r0", "r1", "r2"]
        rest = read_lines(client, cancelled.error_file_id)
        assert len(rest) == 7 and {x["error"]["code"] for x in rest} == {"batch_cancelled"}


def test_cancel_while_validating_and_of_a_finished_batch(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path / "v", batch_validating_seconds=60) as emu, sdk_client(emu) as client:
        batch = create(client, [chat_line(i) for i in range(3)])
        assert client.batches.cancel(batch.id).status == "cancelling"
        cancelled = client.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled" and cancelled.in_progress_at is None
        assert cancelled.output_file_id is None and cancelled.error_file_id is None
        with pytest.raises(openai.BadRequestError) as refused:
            client.batches.cancel(batch.id)
        assert refused.value.body == {
            "message": "Cannot cancel a batch with status 'cancelled'.",
            "type": "invalid_request_error",
            "param": "batch_id",
            "code": None,
        }
        emu.advance_clock(60)
        done = create(client, [chat_line(1)])
        emu.advance_clock(60)
        assert client.batches.retrieve(done.id).status == "completed"
        with pytest.raises(openai.BadRequestError, match=r"Cannot cancel a batch with status 'completed'\."):
            client.batches.cancel(done.id)


def test_list_pages_newest_first(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    file_id = upload(client, [chat_line(1)])
    ids = [client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").id for _ in range(5)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # auto-pagination
    assert {b.status for b in client.batches.list()} == {"completed"}
    last = client.batches.list(after=ids[1], limit=20)
    assert [b.id for b in last.data] == [ids[0]] and not last.has_more
    assert [b["id"] for b in openai_files_emulator.batches()] == ids


def test_unknown_ids(client: openai.OpenAI) -> None:
    for call in (client.batches.retrieve, client.batches.cancel):
        with pytest.raises(openai.NotFoundError) as missing:
            call("batch_doesnotexist")
        assert isinstance(missing.value.body, dict)
        assert missing.value.body["message"] == "No such Batch object: batch_doesnotexist"
    with pytest.raises(openai.NotFoundError) as no_file:
        client.batches.create(input_file_id="file-nope", endpoint=CHAT, completion_window="24h")
    assert "file-nope" in no_file.value.message
    assert isinstance(no_file.value.body, dict) and no_file.value.body["param"] == "input_file_id"
    with pytest.raises(openai.BadRequestError):
        client.batches.list(after="batch_doesnotexist")


def test_input_file_deleted_while_running_still_completes(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path / "d", batch_in_progress_seconds=10) as emu, sdk_client(emu) as client:
        batch = create(client, [chat_line(i) for i in range(4)])
        client.files.delete(batch.input_file_id)
        emu.advance_clock(10)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and len(read_lines(client, done.output_file_id)) == 4


def test_output_expires_after(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    batch = create(client, [chat_line(1)], output_expires_after={"anchor": "created_at", "seconds": 7200})
    done = client.batches.retrieve(batch.id)
    out = client.files.retrieve(done.output_file_id)  # type: ignore[arg-type]
    assert out.expires_at == out.created_at + 7200
    openai_files_emulator.advance_clock(7201)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(out.id)


def test_batches_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "persist"
    with Emulator(data_dir=data_dir, batch_in_progress_seconds=100) as emu, sdk_client(emu) as client:
        batch = create(client, [chat_line(i) for i in range(4)])
        emu.advance_clock(50)
        assert client.batches.retrieve(batch.id).request_counts.completed == 2  # type: ignore[union-attr]
    with Emulator(data_dir=data_dir, batch_in_progress_seconds=100) as emu, sdk_client(emu) as client:
        emu.advance_clock(100)  # a new clock: the wall clock is already past the first run's offset
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert sorted(x["custom_id"] for x in read_lines(client, done.output_file_id)) == ["r0", "r1", "r2", "r3"]
