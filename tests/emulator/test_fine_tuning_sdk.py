"""The official ``openai`` SDK drives ``client.fine_tuning.jobs.*`` against the emulator: the job
lifecycle on the emulator's clock, the results file, failure on bad content, cancel, paging and
the post-cutoff refusal. Every fine-tuning answer is validated against the schemas."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import openai
import pytest

from airflow_openai_files.emulator import Emulator
from tests.emulator.fine_tuning_support import (
    CHECKED,
    GRADER,
    SLOW,
    chat,
    ft_client,
    preference,
    reinforcement,
    upload,
)

BASE = "gpt-4o-mini-2024-07-18"
CUTOFF_TS = datetime(2027, 1, 6, tzinfo=timezone.utc).timestamp()


pytestmark = pytest.mark.openai_files_emulator(**SLOW)


@pytest.fixture
def client(openai_files_emulator: Emulator) -> Iterator[openai.OpenAI]:
    openai_files_emulator.reset()
    with ft_client(openai_files_emulator) as sdk:
        yield sdk


def test_a_job_runs_from_validating_files_to_succeeded_on_the_clock(
    openai_files_emulator: Emulator, client: openai.OpenAI
) -> None:
    training = upload(client, chat(12))
    job = client.fine_tuning.jobs.create(training_file=training, model=BASE, suffix="support-bot", seed=7)
    assert job.status == "validating_files"
    assert job.fine_tuned_model is None and job.finished_at is None and job.trained_tokens is None
    assert job.hyperparameters.n_epochs == "auto" and job.method and job.method.type == "supervised"
    assert job.seed == 7 and job.organization_id == "org-emulator"

    openai_files_emulator.advance_clock(10)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"
    openai_files_emulator.advance_clock(10)
    running = client.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running"
    assert running.estimated_finish == job.created_at + 120
    # "auto" is resolved once training starts: 3 epochs, batch size 1 for 12 examples.
    assert (running.hyperparameters.n_epochs, running.hyperparameters.batch_size) == (3, 1)

    openai_files_emulator.advance_clock(50)
    metrics = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    assert 0 < len(metrics) < 36, "about half of the 36 steps have happened"

    openai_files_emulator.advance_clock(50)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"
    assert done.finished_at == job.created_at + 120 and done.estimated_finish is None
    assert done.fine_tuned_model is not None
    assert re.fullmatch(rf"ft:{BASE}:emulator-org:support-bot:[A-Za-z0-9]{{8}}", done.fine_tuned_model)
    assert done.trained_tokens and done.trained_tokens > 0
    assert done.error is None

    (results_id,) = done.result_files
    results = client.files.retrieve(results_id)
    assert results.purpose == "fine-tune-results" and results.status == "processed"
    rows = list(csv.DictReader(io.StringIO(client.files.content(results_id).text)))
    assert list(rows[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    assert [int(r["step"]) for r in rows] == list(range(1, 37))
    losses = [float(r["train_loss"]) for r in rows]
    assert losses == sorted(losses, reverse=True) and losses[0] > losses[-1]
    assert all(r["valid_loss"] == "" for r in rows), "no validation file, no validation metrics"
    # The training file itself stays processed and not downloadable, as on the service.
    assert client.files.retrieve(training).status == "processed"
    assert [j["status"] for j in openai_files_emulator.fine_tuning_jobs()] == ["succeeded"]


def test_tokens_scale_with_epochs_and_the_model_name_has_an_empty_suffix_slot(
    openai_files_emulator: Emulator, client: openai.OpenAI
) -> None:
    training = upload(client, chat(10))
    three = client.fine_tuning.jobs.create(training_file=training, model=BASE)
    six = client.fine_tuning.jobs.create(
        training_file=training,
        model=BASE,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 6}}},
    )
    openai_files_emulator.advance_clock(121)
    a, b = client.fine_tuning.jobs.retrieve(three.id), client.fine_tuning.jobs.retrieve(six.id)
    assert a.trained_tokens and b.trained_tokens == 2 * a.trained_tokens
    assert a.fine_tuned_model and re.fullmatch(rf"ft:{BASE}:emulator-org::[A-Za-z0-9]{{8}}", a.fine_tuned_model)


def test_validation_file_adds_validation_metrics(openai_files_emulator: Emulator, client: openai.OpenAI) -> None:
    training, validation = upload(client, chat(10)), upload(client, chat(3), name="valid.jsonl")
    job = client.fine_tuning.jobs.create(training_file=training, validation_file=validation, model=BASE)
    openai_files_emulator.advance_clock(121)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.validation_file == validation
    rows = list(csv.DictReader(io.StringIO(client.files.content(done.result_files[0]).text)))
    assert all(float(r["valid_loss"]) > 0 for r in rows)
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert f"Validating training file: {training} and validation file: {validation}" in [e.message for e in events]
    step = next(e for e in events if e.type == "metrics")
    assert isinstance(step.data, dict) and {"step", "train_loss", "valid_loss", "train_mean_token_accuracy"} <= set(
        step.data
    )
    assert re.fullmatch(r"Step \d+/30: training loss=\d+\.\d\d, validation loss=\d+\.\d\d", step.message)


@pytest.mark.parametrize(
    ("lines", "code", "needle"),
    [
        ([*chat(3), "{not json", *chat(8)], "invalid_training_file", "Example 4 (line 4): not valid JSON"),
        (
            [*chat(5), {"messages": [{"role": "user", "content": "no answer"}]}, *chat(5)],
            "invalid_training_file",
            "Example 6 (line 6): 'messages' must contain at least one message with role 'assistant'",
        ),
        ([*chat(4), *preference(6)], "invalid_training_file", "Example 5 (line 5)"),
        ([*chat(2), "", "[1]", *chat(8)], "invalid_training_file", "Example 3 (line 4): expected a JSON object"),
        (chat(3), "invalid_n_examples", "Training file has 3 example(s), but must have at least 10 examples"),
    ],
    ids=["bad-json", "no-assistant", "mixed-formats", "blank-line", "too-few"],
)
def test_a_bad_training_file_fails_the_job_at_validating_files(
    openai_files_emulator: Emulator, client: openai.OpenAI, lines: list[object], code: str, needle: str
) -> None:
    training = upload(client, lines)
    job = client.fine_tuning.jobs.create(training_file=training, model=BASE)
    assert client.files.retrieve(training).status == "processed", "the file itself is not marked"
    openai_files_emulator.advance_clock(10)
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.finished_at == job.created_at + 10
    assert failed.error is not None
    assert (failed.error.code, failed.error.param) == (code, "training_file")
    assert needle in failed.error.message
    if code == "invalid_training_file":
        assert failed.error.message.startswith("The job failed due to a file format error in the training file.")
    assert failed.fine_tuned_model is None and failed.result_files == []
    newest = next(iter(client.fine_tuning.jobs.list_events(job.id, limit=1)))
    assert (newest.level, newest.message) == ("error", failed.error.message)
    openai_files_emulator.advance_clock(500)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "failed"


def test_a_bad_validation_file_names_the_validation_file(
    openai_files_emulator: Emulator, client: openai.OpenAI
) -> None:
    training, validation = upload(client, chat(10)), upload(client, ["[1, 2]"])
    job = client.fine_tuning.jobs.create(training_file=training, validation_file=validation, model=BASE)
    openai_files_emulator.advance_clock(10)
    error = client.fine_tuning.jobs.retrieve(job.id).error
    assert error is not None and (error.code, error.param) == ("invalid_validation_file", "validation_file")
    assert "(line 1)" in error.message


def test_dpo_and_reinforcement_jobs_check_their_own_formats(
    openai_files_emulator: Emulator, client: openai.OpenAI
) -> None:
    dpo_ok = client.fine_tuning.jobs.create(
        training_file=upload(client, preference(10)),
        model=BASE,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
    )
    dpo_bad = client.fine_tuning.jobs.create(training_file=upload(client, chat(10)), model=BASE, method={"type": "dpo"})
    rft: Any = {"type": "reinforcement", "reinforcement": {"grader": GRADER}}
    rft_ok = client.fine_tuning.jobs.create(
        training_file=upload(client, reinforcement(10)), model="o4-mini", method=rft
    )
    rft_bad = client.fine_tuning.jobs.create(training_file=upload(client, chat(10)), model="o4-mini", method=rft)
    openai_files_emulator.advance_clock(121)
    jobs = {j.id: j for j in client.fine_tuning.jobs.list(limit=10)}
    assert jobs[dpo_ok.id].status == "succeeded"
    assert jobs[dpo_ok.id].method.dpo.hyperparameters.beta == 0.1  # type: ignore[union-attr]
    assert jobs[rft_ok.id].status == "succeeded"
    assert jobs[rft_ok.id].method.reinforcement.grader.type == "string_check"  # type: ignore[union-attr]
    for bad in (dpo_bad, rft_bad):
        error = jobs[bad.id].error
        assert jobs[bad.id].status == "failed" and error is not None and error.code == "invalid_training_file"
        assert "(line 1)" in error.message


def test_cancel_a_running_job_and_not_a_finished_one(openai_files_emulator: Emulator, client: openai.OpenAI) -> None:
    training = upload(client, chat(10))
    job = client.fine_tuning.jobs.create(training_file=training, model=BASE)
    openai_files_emulator.advance_clock(30)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None and cancelled.result_files == []
    openai_files_emulator.advance_clock(500)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled", "a cancelled job stays cancelled"
    with pytest.raises(openai.BadRequestError) as raised:
        client.fine_tuning.jobs.cancel(job.id)
    assert raised.value.status_code == 400 and "cancelled" in raised.value.message

    queued = client.fine_tuning.jobs.create(training_file=training, model=BASE)
    openai_files_emulator.advance_clock(15)
    assert client.fine_tuning.jobs.cancel(queued.id).status == "cancelled"
    finished = client.fine_tuning.jobs.create(training_file=training, model=BASE)
    openai_files_emulator.advance_clock(121)
    with pytest.raises(openai.BadRequestError, match="succeeded"):
        client.fine_tuning.jobs.cancel(finished.id)
    assert [j["status"] for j in openai_files_emulator.fine_tuning_jobs()] == ["cancelled", "cancelled", "succeeded"]


def test_events_page_newest_first_without_gaps_or_repeats(
    openai_files_emulator: Emulator, client: openai.OpenAI
) -> None:
    job = client.fine_tuning.jobs.create(training_file=upload(client, chat(10)), model=BASE)
    openai_files_emulator.advance_clock(121)
    first = client.fine_tuning.jobs.list_events(job.id, limit=4)
    assert len(first.data) == 4 and first.has_more
    paged = list(client.fine_tuning.jobs.list_events(job.id, limit=4))  # SDK auto-pagination with after=
    whole = client.fine_tuning.jobs.list_events(job.id, limit=100)
    assert [e.id for e in paged] == [e.id for e in whole.data] and not whole.has_more
    assert len({e.id for e in paged}) == len(paged)
    created = [e.created_at for e in paged]
    assert created == sorted(created, reverse=True)
    messages = [e.message for e in reversed(paged)]
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    assert messages[1:4] == [
        f"Validating training file: {job.training_file}",
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
    ]
    assert messages[-1] == "The job has successfully completed"
    assert sum(e.type == "metrics" for e in paged) == 30


def test_checkpoints_and_job_listing(openai_files_emulator: Emulator, client: openai.OpenAI) -> None:
    training = upload(client, chat(10))
    ids = [
        client.fine_tuning.jobs.create(training_file=training, model=BASE, metadata={"team": t}).id
        for t in ("a", "b", "a", "c", "a")
    ]
    openai_files_emulator.advance_clock(121)
    listed = list(client.fine_tuning.jobs.list(limit=2))
    assert [j.id for j in listed] == ids[::-1]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "a"})] == [ids[4], ids[2], ids[0]]
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(ids[0], limit=1))
    assert [c.step_number for c in checkpoints] == [30, 20, 10]
    model = client.fine_tuning.jobs.retrieve(ids[0]).fine_tuned_model
    assert checkpoints[0].fine_tuned_model_checkpoint == model
    assert checkpoints[1].fine_tuned_model_checkpoint == f"{model}:ckpt-step-20"
    assert checkpoints[0].metrics.train_loss is not None


def test_unknown_jobs_are_404(client: openai.OpenAI) -> None:
    for call in (
        lambda: client.fine_tuning.jobs.retrieve("ftjob-doesnotexist"),
        lambda: client.fine_tuning.jobs.cancel("ftjob-doesnotexist"),
        lambda: client.fine_tuning.jobs.list_events("ftjob-doesnotexist"),
        lambda: client.fine_tuning.jobs.checkpoints.list("ftjob-doesnotexist"),
        lambda: client.fine_tuning.jobs.retrieve("file-abc"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()


def test_creation_is_refused_after_the_cutoff_and_nothing_is_created() -> None:
    with Emulator(fine_tuning_available_until="2027-01-06", **SLOW) as emu, ft_client(emu) as client:
        training = upload(client, chat(10))
        if emu.now() < CUTOFF_TS:  # before the cutoff jobs are still created
            client.fine_tuning.jobs.create(training_file=training, model=BASE)
            emu.advance_clock(CUTOFF_TS - emu.now())
        before = len(emu.fine_tuning_jobs())
        with pytest.raises(openai.PermissionDeniedError) as raised:
            client.fine_tuning.jobs.create(training_file=training, model=BASE)
        assert raised.value.status_code == 403
        assert "2027-01-06" in raised.value.message and "no longer available" in raised.value.message
        assert isinstance(raised.value.body, dict) and raised.value.body.get("code") == "fine_tuning_unavailable"
        assert len(emu.fine_tuning_jobs()) == before
        # Jobs created before the cutoff keep running, as on the service.
        assert all(j["status"] == "succeeded" for j in emu.fine_tuning_jobs())
    assert "ErrorResponse" in CHECKED and "FineTuningJob" in CHECKED


def test_reported_accuracies_are_fractions_from_the_first_step(
    openai_files_emulator: Emulator, client: openai.OpenAI
) -> None:
    """Every accuracy in the metric events and the results file is in [0, 1], step 1 included (it was negative)."""
    training, validation = upload(client, chat(12)), upload(client, chat(6))
    job = client.fine_tuning.jobs.create(training_file=training, validation_file=validation, model=BASE)
    openai_files_emulator.advance_clock(121)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"

    events = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    by_step = {int(e.data["step"]): e.data for e in events}  # type: ignore[index]
    assert 1 in by_step and "valid_mean_token_accuracy" in by_step[1]
    (results_id,) = done.result_files
    rows = list(csv.DictReader(io.StringIO(client.files.content(results_id).text)))
    assert [int(r["step"]) for r in rows] == list(range(1, 37))
    accuracies = [float(m[key]) for m in by_step.values() for key in m if "accuracy" in key]
    accuracies += [float(r[key]) for r in rows for key in ("train_accuracy", "valid_mean_token_accuracy")]
    assert len(accuracies) == 2 * len(by_step) + 2 * 36
    assert all(0.0 <= value <= 1.0 for value in accuracies), min(accuracies)
    # Still a learning curve: validation accuracy rises from the first step to the last.
    assert float(rows[0]["valid_mean_token_accuracy"]) < float(rows[-1]["valid_mean_token_accuracy"])
