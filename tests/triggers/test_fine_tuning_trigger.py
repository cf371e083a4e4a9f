"""OpenAIFineTuningJobTrigger: one terminal event per job outcome, new events logged once, on_kill cancels."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.triggers import OpenAIFineTuningJobTrigger
from tests.support.task_helpers import fine_tune_lines
from tests.support.triggers import collect, run_trigger

MODEL = "gpt-4.1-mini-2025-04-14"
TRAIN_SECONDS = 3600.0


class Recorder:
    """A logger standing in for the trigger's: keeps each formatted line, and which were logged at debug."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.debug_lines: list[str] = []

    def _add(self, msg: str, *args: Any, **_: Any) -> None:
        self.lines.append(msg % args if args else msg)

    def debug(self, msg: str, *args: Any, **_: Any) -> None:
        self._add(msg, *args)
        self.debug_lines.append(self.lines[-1])

    info = warning = error = exception = _add


pytestmark = pytest.mark.openai_files_emulator(fine_tuning_train_seconds=TRAIN_SECONDS)


def create_job(body: bytes | None = None) -> dict[str, Any]:
    hook = OpenAIFilesHook()
    file = hook.upload_file(io.BytesIO(body or fine_tune_lines()), "fine-tune", filename="t.jsonl", validate=False)
    return hook.create_fine_tuning_job(file["id"], MODEL, suffix="t")


def trigger_for(job_id: str, **kwargs: Any) -> tuple[OpenAIFineTuningJobTrigger, Recorder]:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    trigger = OpenAIFineTuningJobTrigger(job_id, **kwargs)
    recorder = Recorder()
    trigger._log = recorder  # type: ignore[assignment]
    return trigger, recorder


def test_serialize_round_trips_without_the_key(openai_files_connection: Any) -> None:
    trigger = OpenAIFineTuningJobTrigger("ftjob-abc", last_event_id="ftevent-1", cancel_on_kill=True, timeout=60)
    path, kwargs = trigger.serialize()
    assert path == "airflow_openai_files.triggers.OpenAIFineTuningJobTrigger"
    assert kwargs["job_id"] == "ftjob-abc" and kwargs["last_event_id"] == "ftevent-1" and kwargs["cancel_on_kill"]
    assert openai_files_connection.api_key not in json.dumps(kwargs)
    assert OpenAIFineTuningJobTrigger(**kwargs).serialize() == (path, kwargs)
    with pytest.raises(OpenAIFilesValidationError):
        OpenAIFineTuningJobTrigger("../jobs")


def test_success_logs_each_step_event_once(openai_files_connection: Any) -> None:
    job = create_job()

    async def scenario() -> list[dict[str, Any]]:
        task = asyncio.ensure_future(collect(trigger, serialized=False))
        while not any("Step " in line for line in recorder.lines):  # training half done: some step metrics
            openai_files_connection.advance_clock(TRAIN_SECONDS / 4)
            await asyncio.sleep(0.15)
        openai_files_connection.advance_clock(TRAIN_SECONDS * 2)
        return await asyncio.wait_for(task, 20)

    trigger, recorder = trigger_for(job["id"])
    events = asyncio.run(scenario())
    assert len(events) == 1 and events[0]["status"] == "success"
    done = events[0]["job"]
    assert done["status"] == "succeeded" and done["fine_tuned_model"].startswith(f"ft:{MODEL}:")
    steps = [line for line in recorder.lines if ": [info] Step " in line]
    numbers = [int(line.split("Step ")[1].split("/")[0]) for line in steps]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 2  # each step once, in order
    assert any('"train_loss"' in line for line in steps)  # the metrics themselves are logged
    # ...at debug only; at info a summary at most once a minute (this run is seconds long: the first
    # step seen) and the newest step when the job ended.
    assert set(steps) <= set(recorder.debug_lines)
    summaries = [line for line in recorder.lines if ": step " in line and line not in recorder.debug_lines]
    assert 1 <= len(summaries) <= 2, summaries
    assert summaries[-1].startswith(f"{job['id']}: step {numbers[-1]}/{numbers[-1]}: training loss ")
    logged_ids = OpenAIFilesHook().list_fine_tuning_events(job["id"])
    assert events[0]["last_event_id"] == next(iter(logged_ids))["id"]
    assert any("is running" in line for line in recorder.lines)


def test_failed_job_is_an_error_event_with_the_jobs_error(openai_files_connection: Any) -> None:
    bad = fine_tune_lines(9)  # fewer than ten examples: the job fails at validating_files
    job = create_job(bad)
    openai_files_connection.advance_clock(60)
    trigger, _ = trigger_for(job["id"])
    (event,) = run_trigger(trigger, serialized=False)
    assert event["status"] == "error"
    assert f"Fine-tuning job {job['id']} failed:" in event["message"]
    assert "code=invalid_n_examples" in event["message"] and "param=training_file" in event["message"]


def test_cancelled_and_missing_jobs(openai_files_connection: Any) -> None:
    job = create_job()
    OpenAIFilesHook().cancel_fine_tuning_job(job["id"])
    (cancelled,) = run_trigger(trigger_for(job["id"])[0])
    assert cancelled["status"] == "error" and "was cancelled" in cancelled["message"]
    (missing,) = run_trigger(trigger_for("ftjob-missing123")[0])
    assert missing["status"] == "error" and "does not exist (HTTP 404" in missing["message"]


def test_timeout_leaves_the_job_running(openai_files_connection: Any) -> None:
    job = create_job()
    (event,) = run_trigger(trigger_for(job["id"], timeout=0.3)[0])
    assert event["status"] == "timeout" and job["id"] in event["message"]
    assert openai_files_connection.fine_tuning_jobs()[0]["status"] in ("validating_files", "queued", "running")


def test_on_kill_cancels_only_when_asked(openai_files_connection: Any) -> None:
    job = create_job()
    asyncio.run(trigger_for(job["id"], cancel_on_kill=False)[0].on_kill())
    assert openai_files_connection.fine_tuning_jobs()[0]["status"] != "cancelled"
    asyncio.run(trigger_for(job["id"], cancel_on_kill=True)[0].on_kill())
    assert openai_files_connection.fine_tuning_jobs()[0]["status"] == "cancelled"


def test_waits_through_paused_until_resumed(openai_files_connection: Any) -> None:
    hook = OpenAIFilesHook()
    job = create_job()
    openai_files_connection.advance_clock(10)  # validated and queued: now running, for an hour of the emulator's clock
    assert hook.get_fine_tuning_job(job["id"])["status"] == "running"
    assert hook.pause_fine_tuning_job(job["id"])["status"] == "paused"
    openai_files_connection.advance_clock(2 * TRAIN_SECONDS)  # paused jobs do not train
    trigger, recorder = trigger_for(job["id"], timeout=0.5)
    (event,) = run_trigger(trigger, serialized=False)
    assert event["status"] == "timeout" and event["job"]["status"] == "paused"
    assert any(f"Fine-tuning job {job['id']} is paused" in line for line in recorder.lines)
    hook.resume_fine_tuning_job(job["id"])
    openai_files_connection.advance_clock(2 * TRAIN_SECONDS)
    (done,) = run_trigger(trigger_for(job["id"], last_event_id=event["last_event_id"])[0])
    assert done["status"] == "success"


def test_status_helpers_word_failures_and_order_events() -> None:
    from airflow_openai_files.resources.fine_tuning import job_error_message, judge, unseen_events

    failed = {
        "id": "ftjob-1",
        "status": "failed",
        "training_file": "file-t",
        "error": {"code": "invalid_training_file", "message": "Line 7: bad role.", "param": "training_file", "line": 7},
    }
    message = job_error_message(failed)
    assert message == (
        "Fine-tuning job ftjob-1 failed: Line 7: bad role. "
        "(code=invalid_training_file, param=training_file, line=7; training_file is file-t)"
    )
    assert judge(failed) == ("error", message)
    assert judge({"id": "ftjob-1", "status": "paused"}).state == "waiting"
    assert judge({"id": "ftjob-1", "status": "some_new_status"}).state == "waiting"  # never fail on a new status
    assert judge({"id": "ftjob-1", "status": "cancelled"}) == ("error", "Fine-tuning job ftjob-1 was cancelled")
    newest_first = [{"id": f"e{i}"} for i in range(9, 0, -1)]
    assert [e["id"] for e in unseen_events(newest_first, "e6", 100)] == ["e7", "e8", "e9"]
    assert [e["id"] for e in unseen_events(newest_first, None, 2)] == ["e8", "e9"]


def test_event_log_summarises_step_metrics_at_most_once_a_minute() -> None:
    from airflow_openai_files.resources.fine_tuning import metrics_summary
    from airflow_openai_files.transfer.progress import EventLog

    now = [0.0]
    recorder = Recorder()
    log = EventLog(recorder, "ftjob-1", clock=lambda: now[0])

    def step(n: int) -> dict[str, Any]:
        data = {"step": n, "train_loss": 2.0 / n, "valid_loss": 2.2 / n, "valid_mean_token_accuracy": 0.5 + n / 100}
        return {"id": f"e{n}", "type": "metrics", "level": "info", "message": f"Step {n}/30: ...", "data": data}

    def info_lines() -> list[str]:
        return [line for line in recorder.lines if line not in recorder.debug_lines]

    log.record([{"id": "m", "type": "message", "level": "info", "message": "Fine-tuning job started"}, step(1)])
    assert info_lines() == ["ftjob-1: [info] Fine-tuning job started", f"ftjob-1: {metrics_summary(step(1))}"]
    assert info_lines()[-1] == (
        "ftjob-1: step 1/30: training loss 2.0000, validation loss 2.2000, validation accuracy 0.5100"
    )
    for n in range(2, 20):  # 18 steps in 45 s: no summary
        now[0] += 2.5
        log.record([step(n)])
    assert len(info_lines()) == 2 and len(recorder.debug_lines) == 19  # every step at debug
    now[0] = 61.0
    log.record([step(20)])
    assert info_lines()[-1].startswith("ftjob-1: step 20/30:")
    now[0] = 70.0
    log.record([step(21), step(22)])
    log.record([], done=True)  # the job ended: the newest step not summarised yet
    assert info_lines()[-1].startswith("ftjob-1: step 22/30:") and len(info_lines()) == 4
    log.record([], done=True)  # nothing new: nothing said twice
    assert len(info_lines()) == 4
