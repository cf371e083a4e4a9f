"""OpenAIBatchOperator on a job larger than one batch, against the emulator: shards, the enqueued-token limit,
line retries, the merged result, and a kill then a retry (exactly once)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, TaskDeferred
from airflow_openai_files.operators import OpenAIBatchOperator
from airflow_openai_files.operators._batch_shards import SHARD_METADATA
from airflow_openai_files.transfer.shards import estimate_tokens
from tests.support.task_helpers import make_context
from tests.support.triggers import trigger_event

ENDPOINT = "/v1/chat/completions"


class FakeStore:
    """The task state store of Airflow 3.3, kept across tries like the real one."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.values[key] = json.loads(json.dumps(value))  # stored as JSON, as the real one

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def task_context(try_number: int = 1, store: FakeStore | None = None) -> Any:
    context = make_context(try_number=try_number)
    context["ti"] = SimpleNamespace(
        try_number=try_number, task_id="job", dag_id="shard_dag", run_id="manual__1", map_index=-1
    )
    if store is not None:
        context["task_state_store"] = store
    return context


@pytest.fixture
def start_emulator(openai_files_emulators: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``start(**settings)``: the session's emptied emulator with those settings, the default connection on it."""

    def start(**settings: Any) -> Any:
        emu = openai_files_emulators.get(**settings)
        monkeypatch.setenv("AIRFLOW_CONN_OPENAI_FILES_DEFAULT", emu.airflow_connection())
        return emu

    return start


def request(i: int, *, bad: bool = False) -> dict[str, Any]:
    messages = [] if bad else [{"role": "user", "content": f"Question number {i}"}]
    return {"custom_id": f"q{i}", "method": "POST", "url": ENDPOINT, "body": {"model": "m", "messages": messages}}


def job_file(tmp_path: Path, count: int, bad: tuple[int, ...] = ()) -> Path:
    path = tmp_path / "job.jsonl"
    with open(path, "wb") as handle:
        for i in range(count):
            handle.write(json.dumps(request(i, bad=i in bad)).encode() + b"\n")
    return path


def operator(tmp_path: Path, **kwargs: Any) -> OpenAIBatchOperator:
    kwargs.setdefault("task_id", "job")
    kwargs.setdefault("endpoint", ENDPOINT)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("output_destination", str(tmp_path / "out.jsonl"))
    kwargs.setdefault("error_destination", str(tmp_path / "err.jsonl"))
    return OpenAIBatchOperator(**kwargs)


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_bytes().splitlines() if line.strip()]


def shard_batches(emu: Any) -> dict[str, list[dict[str, Any]]]:
    """Every batch on the emulator, by the shard it was created for."""
    found: dict[str, list[dict[str, Any]]] = {}
    for batch in emu.batches():
        found.setdefault((batch.get("metadata") or {}).get(SHARD_METADATA), []).append(batch)
    return found


def test_job_is_split_and_merged_in_input_order(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    source = job_file(tmp_path, 23)
    result = operator(tmp_path, input_file=str(source), max_batch_lines=5).execute(task_context())
    assert len(emu.batches()) == 5 and all(b["status"] == "completed" for b in emu.batches())
    assert [b["request_counts"]["total"] for b in emu.batches()] == [5, 5, 5, 5, 3]
    assert ids_of(tmp_path / "out.jsonl") == [f"q{i}" for i in range(23)]  # the input's order
    assert not (tmp_path / "err.jsonl").exists() or (tmp_path / "err.jsonl").read_bytes() == b""
    assert result["request_counts"] == {"total": 23, "completed": 23, "failed": 0}
    assert sorted(result["batch_ids"]) == sorted(b["id"] for b in emu.batches())
    assert [s["request_counts"]["total"] for s in result["shards"]] == [5, 5, 5, 5, 3]
    usage = result["usage"]
    assert usage["input_tokens"] == sum(b["usage"]["input_tokens"] for b in emu.batches()) > 0
    assert usage["output_tokens"] == sum(b["usage"]["output_tokens"] for b in emu.batches()) > 0
    assert usage["cached_tokens"] == 0
    # every shard input is a valid batch file of the service's limits, holding a slice of the input in order
    shard_inputs = [emu.content(b["input_file_id"]) for b in emu.batches()]
    assert b"".join(shard_inputs) == source.read_bytes()


def test_one_batch_input_runs_as_before(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    op = operator(
        tmp_path,
        input_file=str(job_file(tmp_path, 5)),
        max_batch_lines=5,
        expires_after=7200,
        output_expires_after=3600,
    )
    result = op.execute(task_context())
    [batch] = emu.batches()
    assert result["batch_id"] == batch["id"] and "shards" not in result
    assert SHARD_METADATA not in (batch["metadata"] or {})
    given, output = emu.file(batch["input_file_id"]), emu.file(batch["output_file_id"])  # both flavors' parameters
    assert given["expires_at"] - given["created_at"] == 7200
    assert output["expires_at"] - output["created_at"] == 3600


def test_duplicate_custom_id_refused_before_anything_is_sent(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    source = tmp_path / "dup.jsonl"
    lines = [request(i) for i in range(12)] + [request(3)]
    source.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    with pytest.raises(
        AirflowFailException, match=r"line 13: 'custom_id' must be unique.*'q3' was first used on line 4"
    ):
        operator(tmp_path, input_file=str(source), max_batch_lines=5).execute(task_context())
    assert emu.files() == [] and emu.batches() == []


def test_missing_custom_id_refused_before_anything_is_sent(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    source = tmp_path / "missing.jsonl"
    lines = [request(i) for i in range(12)]
    del lines[7]["custom_id"]
    source.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    with pytest.raises(AirflowFailException, match=r"line 8: 'custom_id' is missing"):
        operator(tmp_path, input_file=str(source), max_batch_lines=5).execute(task_context())
    assert emu.files() == [] and emu.batches() == []


def test_enqueued_token_limit_admits_two_shards_at_a_time(start_emulator: Any, tmp_path: Path) -> None:
    per_shard = sum(estimate_tokens(request(i)["body"]) for i in range(10, 20))  # the estimate of a full shard
    emu = start_emulator(batch_in_progress_seconds=0.3, enqueued_token_limit=2 * per_shard)
    source = job_file(tmp_path, 60)
    result = operator(tmp_path, input_file=str(source), max_batch_lines=10, max_enqueued_tokens=2 * per_shard).execute(
        task_context()
    )
    batches = emu.batches()
    by_shard = shard_batches(emu)
    assert sorted(by_shard) == [str(i) for i in range(6)]
    assert all(len(found) == 1 for found in by_shard.values())  # none submitted twice
    assert all(b["status"] == "completed" for b in batches)
    # never more than two in progress at once: each batch started after the one two places before it ended
    ordered = sorted(batches, key=lambda b: b["created_at"])
    for earlier, later in zip(ordered, ordered[2:], strict=False):
        assert later["in_progress_at"] >= earlier["completed_at"] - 1
    assert ids_of(tmp_path / "out.jsonl") == [f"q{i}" for i in range(60)]
    assert result["request_counts"]["completed"] == 60


def test_token_refusals_requeue_the_shard_until_it_runs(start_emulator: Any, tmp_path: Path) -> None:
    per_shard = sum(estimate_tokens(request(i)["body"]) for i in range(10, 20))
    # The service admits one shard's tokens; our own budget says nothing: the service refuses, we back off.
    emu = start_emulator(batch_in_progress_seconds=0.3, enqueued_token_limit=per_shard)
    source = job_file(tmp_path, 30)
    result = operator(tmp_path, input_file=str(source), max_batch_lines=10, poll_interval=0.05).execute(task_context())
    by_shard = shard_batches(emu)
    assert sorted(by_shard) == ["0", "1", "2"]
    for found in by_shard.values():
        ran = [b for b in found if b["status"] == "completed"]
        refused = [b for b in found if b["status"] == "failed"]
        assert len(ran) == 1 and len(ran) + len(refused) == len(found)
        assert all(b["errors"]["data"][0]["code"] == "token_limit_exceeded" for b in refused)
    assert any(len(found) > 1 for found in by_shard.values())  # the limit did refuse some
    assert ids_of(tmp_path / "out.jsonl") == [f"q{i}" for i in range(30)]
    assert result["request_counts"]["completed"] == 30


def test_retryable_line_failures_are_sent_again_and_merged(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    emu.add_line_fault(status=429, custom_ids=["q2", "q13"], times=1)
    emu.add_line_fault(status=500, custom_ids=["q7"], times=2)
    source = job_file(tmp_path, 20, bad=(4, 15))  # 4 and 15: the endpoint refuses them (400): deterministic
    result = operator(tmp_path, input_file=str(source), max_batch_lines=10, max_failed_requests=2).execute(
        task_context()
    )
    out, err = ids_of(tmp_path / "out.jsonl"), ids_of(tmp_path / "err.jsonl")
    assert out == [f"q{i}" for i in range(20) if i not in (4, 15)]
    assert err == ["q4", "q15"]
    statuses = [
        json.loads(line)["response"]["status_code"] for line in (tmp_path / "err.jsonl").read_bytes().splitlines()
    ]
    assert statuses == [400, 400]
    by_shard = shard_batches(emu)
    # q2, q7 (first 500) from shard 0 and q13 from shard 1 went again; q7 failed a second time and went a third
    assert sorted(by_shard) == ["0", "0r2", "0r3", "1", "1r2"]
    assert by_shard["0r2"][0]["request_counts"]["total"] == 2
    assert by_shard["0r3"][0]["request_counts"]["total"] == 1
    assert result["request_counts"] == {"total": 20, "completed": 18, "failed": 2}


def test_line_attempts_run_out(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    emu.add_line_fault(status=503, custom_ids=["q1"], times=5)
    source = job_file(tmp_path, 12)
    result = operator(
        tmp_path, input_file=str(source), max_batch_lines=6, max_line_attempts=2, max_failed_requests=1
    ).execute(task_context())
    assert ids_of(tmp_path / "err.jsonl") == ["q1"]
    assert "q1" not in ids_of(tmp_path / "out.jsonl") and len(ids_of(tmp_path / "out.jsonl")) == 11
    assert sorted(shard_batches(emu)) == ["0", "0r2", "1"]
    assert result["request_counts"]["failed"] == 1


def test_expired_shard_sends_its_unfinished_lines_again(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(batch_in_progress_seconds=3600)  # nothing finishes on its own
    source = job_file(tmp_path, 10)
    op = operator(tmp_path, input_file=str(source), max_batch_lines=5, deferrable=True)
    context = task_context(1, FakeStore())
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert len(emu.batches()) == 2
    emu.advance_clock(1800)  # half the lines of each batch are answered
    for batch in emu.batches():
        emu.expire_batch(batch["id"])
    assert all(b["status"] == "expired" and 0 < b["request_counts"]["completed"] < 5 for b in emu.batches())
    emu_fast = emu  # the retry shards run with the same durations: let the clock carry them through
    trigger = deferred.value.trigger
    event = trigger_event(trigger)
    with pytest.raises(TaskDeferred) as again:
        op.execute_complete_shards(context, event)
    emu_fast.advance_clock(7200)
    result = op.execute_complete_shards(context, trigger_event(again.value.trigger))
    assert ids_of(tmp_path / "out.jsonl") == [f"q{i}" for i in range(10)]
    assert sorted(shard_batches(emu)) == ["0", "0r2", "1", "1r2"]
    assert result["request_counts"] == {"total": 10, "completed": 10, "failed": 0}


def test_deferred_job_logs_progress_and_resumes(
    start_emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = start_emulator(batch_in_progress_seconds=0.3)
    source = job_file(tmp_path, 30)
    op = operator(tmp_path, input_file=str(source), max_batch_lines=10, max_concurrent_batches=2, deferrable=True)
    context = task_context()  # no state store: the state travels in the trigger
    event: dict[str, Any] | None = None
    rounds = 0
    with caplog.at_level("INFO"):
        while True:
            rounds += 1
            try:
                result = op.execute(context) if event is None else op.execute_complete_shards(context, event)
                break
            except TaskDeferred as deferred:
                assert deferred.method_name == "execute_complete_shards"
                assert 1 <= len(deferred.trigger.batch_ids) <= 2
                event = trigger_event(deferred.trigger)
                assert event["status"] == "success"
    assert rounds >= 2 and len(emu.batches()) == 3
    logged = caplog.text + capsys.readouterr().out
    # the trigger logs the whole job's progress at each poll while the task is deferred
    progress = [line for line in logged.splitlines() if "OpenAIBatchShardsTrigger" in line and "Shards: " in line]
    assert any("0/3 finished, 2 in flight" in line for line in progress)
    assert any("30/30 done (30 succeeded, 0 failed)" in line for line in progress)
    assert ids_of(tmp_path / "out.jsonl") == [f"q{i}" for i in range(30)]
    assert result["request_counts"]["completed"] == 30


@pytest.mark.parametrize("with_store", [True, False], ids=["task-state-store", "metadata-lookup"])
def test_kill_mid_run_then_retry_no_duplicate_batch(start_emulator: Any, tmp_path: Path, with_store: bool) -> None:
    emu = start_emulator(batch_in_progress_seconds=0.3)
    source = job_file(tmp_path, 40)
    store = FakeStore() if with_store else None
    first = operator(tmp_path, input_file=str(source), max_batch_lines=10, max_concurrent_batches=3)
    real_create = first.hook.create_batch
    created: list[str] = []

    def create_then_die(*args: Any, **kwargs: Any) -> dict[str, Any]:
        batch = real_create(*args, **kwargs)
        created.append(batch["id"])
        if len(created) == 2:  # the second batch exists on the service, the worker dies before recording it
            raise SystemExit("worker killed")  # as tests/reliability kill a worker mid-step
        return batch

    first.hook.create_batch = create_then_die  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        first.execute(task_context(1, store))
    assert len(emu.batches()) == 2
    second = operator(tmp_path, input_file=str(source), max_batch_lines=10, max_concurrent_batches=3)
    result = second.execute(task_context(2, store))
    by_shard = shard_batches(emu)
    assert sorted(by_shard) == ["0", "1", "2", "3"]
    assert all(len(found) == 1 for found in by_shard.values())  # no shard paid for twice
    assert set(created) <= {b["id"] for b in emu.batches()}
    assert Counter(f["filename"] for f in emu.files() if f["purpose"] == "batch").most_common(1)[0][1] == 1
    expected = tmp_path / "expected"
    expected.mkdir()
    reference = operator(
        expected,
        task_id="reference",
        input_file=str(source),
        max_batch_lines=10,
        output_destination=str(expected / "out.jsonl"),
        error_destination=str(expected / "err.jsonl"),
    )
    reference.execute(task_context(1))
    assert ids_of(tmp_path / "out.jsonl") == ids_of(expected / "out.jsonl") == [f"q{i}" for i in range(40)]
    assert result["request_counts"] == {"total": 40, "completed": 40, "failed": 0}


def test_kill_after_a_line_retry_was_submitted_then_retry_without_store(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    emu.add_line_fault(status=429, custom_ids=["q1"], times=1)
    source = job_file(tmp_path, 20)
    first = operator(tmp_path, input_file=str(source), max_batch_lines=10)
    real_create = first.hook.create_batch

    def die_after_the_retry_shard(*args: Any, **kwargs: Any) -> dict[str, Any]:
        batch = real_create(*args, **kwargs)
        if kwargs["metadata"][SHARD_METADATA] == "0r2":
            raise SystemExit("worker killed")  # as tests/reliability kill a worker mid-step
        return batch

    first.hook.create_batch = die_after_the_retry_shard  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        first.execute(task_context(1))
    assert "0r2" in shard_batches(emu)
    result = operator(tmp_path, input_file=str(source), max_batch_lines=10).execute(task_context(2))
    by_shard = shard_batches(emu)
    assert sorted(by_shard) == ["0", "0r2", "1"] and all(len(found) == 1 for found in by_shard.values())
    assert Counter(f["filename"] for f in emu.files() if f["purpose"] == "batch").most_common(1)[0][1] == 1
    assert ids_of(tmp_path / "out.jsonl") == [f"q{i}" for i in range(20)]
    assert result["request_counts"] == {"total": 20, "completed": 20, "failed": 0}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_batch_lines": 50_001}, "max_batch_lines must be a whole number from 1 to 50,000"),
        ({"max_batch_bytes": 0}, "max_batch_bytes must be a whole number from 1"),
        ({"max_enqueued_tokens": 0}, "max_enqueued_tokens must be a whole number at least 1"),
        ({"max_concurrent_batches": 1.5}, "max_concurrent_batches must be a whole number"),
        ({"max_line_attempts": 0}, "max_line_attempts must be a whole number from 1 to 100"),
        ({"expires_after": 60}, "expires_after: "),
        ({"output_expires_after": 3_000_000}, "output_expires_after: "),
    ],
)
def test_shard_arguments_checked_at_parse_time(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(AirflowFailException, match=match):
        operator(tmp_path, input_file="in.jsonl", **kwargs)


def test_waiting_for_room_polls_at_the_poll_interval(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(batch_in_progress_seconds=0.5)
    source = job_file(tmp_path, 30)
    started = time.monotonic()
    operator(tmp_path, input_file=str(source), max_batch_lines=10, max_concurrent_batches=1, poll_interval=0.1).execute(
        task_context()
    )
    elapsed = time.monotonic() - started
    polls = [path for method, path, _ in emu.request_log() if method == "GET" and path.startswith("/v1/batches/")]
    assert len(emu.batches()) == 3 and elapsed >= 1.5  # one at a time
    assert len(polls) <= elapsed / 0.1 + 6  # one poll per interval for the one batch in flight, no busy loop


def test_deterministic_errors_over_the_allowance_fail_after_landing_the_error_file(
    start_emulator: Any, tmp_path: Path
) -> None:
    start_emulator()
    source = job_file(tmp_path, 12, bad=(3, 9))
    with pytest.raises(AirflowFailException, match=r"2 of 12 requests without an answer.*see .*err.jsonl"):
        operator(tmp_path, input_file=str(source), max_batch_lines=5).execute(task_context())
    assert ids_of(tmp_path / "err.jsonl") == ["q3", "q9"]  # landed before the task failed
    assert len(ids_of(tmp_path / "out.jsonl")) == 10


def test_timeout_cancels_the_jobs_batches(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator(batch_in_progress_seconds=3600)
    source = job_file(tmp_path, 12)
    with pytest.raises(AirflowFailException, match=r"Timed out waiting for the sharded job; cancelled batch_"):
        operator(tmp_path, input_file=str(source), max_batch_lines=5, timeout=0.5).execute(task_context())
    assert len(emu.batches()) == 3
    assert {b["status"] for b in emu.batches()} <= {"cancelling", "cancelled"}


def test_too_much_metadata_for_a_shard_refused_before_anything_is_sent(start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator()
    metadata = {f"k{i}": "v" for i in range(14)}  # one batch takes 14 (+ task key + request key); a shard 13
    with pytest.raises(AirflowFailException, match="at most 13 are free"):
        operator(tmp_path, input_file=str(job_file(tmp_path, 12)), max_batch_lines=5, metadata=metadata).execute(
            task_context()
        )
    assert emu.files() == [] and emu.batches() == []
