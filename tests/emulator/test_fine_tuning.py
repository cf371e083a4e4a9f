"""Fine-tuning jobs on the emulator over plain HTTP: request strictness and the service's error
shapes, file checks at creation, the emulator's options (phase durations, organisation, cutoff)
through the constructor, the configuration and the CLI of the child process."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests

from airflow_openai_files.emulator import Emulator, EmulatorProcess
from airflow_openai_files.emulator.__main__ import parse_args
from airflow_openai_files.emulator.core.config import EmulatorConfig
from tests.emulator.fine_tuning_support import SLOW, chat, ft_client, upload
from tests.openapi_schemas import validate

BASE = "gpt-4o-mini-2024-07-18"


pytestmark = pytest.mark.openai_files_emulator(**SLOW)


@pytest.fixture
def training(openai_files_emulator: Emulator) -> str:
    with ft_client(openai_files_emulator) as client:
        return upload(client, chat(10))


def post(emu: Emulator | EmulatorProcess, body: Any, path: str = "/fine_tuning/jobs") -> requests.Response:
    response = requests.post(
        emu.base_url + path, json=body, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=30
    )
    payload = response.json()
    validate("ErrorResponse" if response.status_code >= 400 else "FineTuningJob", payload)
    return response


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.status_code >= 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.mark.parametrize(
    ("extra", "status", "message", "param"),
    [
        ({"foo": 1}, 400, "Unrecognized request argument supplied: foo", None),
        ({"model": None}, 400, "Missing required parameter: 'model'.", "model"),
        ({"suffix": "x" * 65}, 400, "Expected a string with maximum length 64", "suffix"),
        ({"seed": "7"}, 400, "Invalid type for 'seed'", "seed"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, 400, "at most 16 properties", "metadata"),
        ({"metadata": {"k": "v" * 513}}, 400, "maximum length 512", "metadata.k"),
        ({"hyperparameters": {"n_epochs": 0}}, 400, "integer below minimum value", None),
        ({"hyperparameters": {"n_epochs": "many"}}, 400, "expected 'auto' or an integer", None),
        ({"hyperparameters": {"epochs": 3}}, 400, "Unrecognized request argument supplied: method.supervised", None),
        ({"method": {"type": "lora"}}, 400, "Invalid value for 'method.type'", "method.type"),
        (
            {"method": {"type": "dpo", "supervised": {}}},
            400,
            "Unrecognized request argument supplied: method.supervised",
            None,
        ),
        (
            {"method": {"type": "reinforcement"}},
            400,
            "Missing required parameter: 'method.reinforcement.grader'.",
            None,
        ),
        (
            {"method": {"type": "dpo"}, "hyperparameters": {"n_epochs": 2}},
            400,
            "supervised jobs only",
            "hyperparameters",
        ),
        ({"integrations": [{"type": "slack"}]}, 400, "Invalid 'integrations[0]'", "integrations[0]"),
    ],
)
def test_bad_requests_are_refused_like_the_service(
    openai_files_emulator: Emulator, training: str, extra: dict[str, Any], status: int, message: str, param: str | None
) -> None:
    before = len(openai_files_emulator.fine_tuning_jobs())
    response = post(openai_files_emulator, {"training_file": training, "model": BASE, **extra})
    assert response.status_code == status
    error = error_of(response)
    assert message in error["message"] and error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert len(openai_files_emulator.fine_tuning_jobs()) == before, "a refused request creates nothing"


def test_training_and_validation_files_must_exist_and_be_fine_tune_files(
    openai_files_emulator: Emulator, training: str
) -> None:
    error = error_of(post(openai_files_emulator, {"training_file": "file-nope", "model": BASE}))
    assert (error["message"], error["param"]) == ("invalid training_file: file-nope", "training_file")
    error = error_of(
        post(openai_files_emulator, {"training_file": training, "validation_file": "file-nope", "model": BASE})
    )
    assert (error["message"], error["param"]) == ("invalid validation_file: file-nope", "validation_file")
    with ft_client(openai_files_emulator) as client:
        batch = upload(client, chat(10), purpose="batch")
    error = error_of(post(openai_files_emulator, {"training_file": batch, "model": BASE}))
    assert (
        error["param"] == "training_file"
        and "purpose 'batch'" in error["message"]
        and "'fine-tune'" in error["message"]
    )


def test_the_created_job_echoes_the_request(openai_files_emulator: Emulator, training: str) -> None:
    body = {
        "training_file": training,
        "model": BASE,
        "suffix": "s",
        "seed": 42,
        "metadata": {"airflow_task_key": "dag.task.run"},
        "integrations": [{"type": "wandb", "wandb": {"project": "p"}}],
        "hyperparameters": {"n_epochs": 2, "learning_rate_multiplier": 0.5},
    }
    job = post(openai_files_emulator, body).json()
    assert job["status"] == "validating_files" and re.fullmatch(r"ftjob-[A-Za-z0-9]{24}", job["id"])
    assert job["metadata"] == body["metadata"] and job["integrations"] == body["integrations"] and job["seed"] == 42
    assert job["hyperparameters"] == {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": 0.5}
    assert job["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": 0.5}},
    }
    assert job["user_provided_suffix"] == "s" and job["error"] is None and job["result_files"] == []
    listed = requests.get(
        openai_files_emulator.base_url + "/fine_tuning/jobs",
        params={"metadata[airflow_task_key]": "dag.task.run"},
        headers={"Authorization": f"Bearer {openai_files_emulator.api_key}"},
        timeout=30,
    ).json()
    validate("ListPaginatedFineTuningJobsResponse", listed)
    assert [j["id"] for j in listed["data"]] == [job["id"]]


def test_bad_json_and_bad_cursor(openai_files_emulator: Emulator, training: str) -> None:
    headers = {"Authorization": f"Bearer {openai_files_emulator.api_key}", "Content-Type": "application/json"}
    response = requests.post(
        openai_files_emulator.base_url + "/fine_tuning/jobs", data=b"{nope", headers=headers, timeout=30
    )
    assert response.status_code == 400 and "could not parse the JSON body" in response.json()["error"]["message"]
    response = requests.get(
        openai_files_emulator.base_url + "/fine_tuning/jobs?after=ftjob-unknown", headers=headers, timeout=30
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "after"
    response = requests.get(openai_files_emulator.base_url + "/fine_tuning/jobs?limit=0", headers=headers, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "integer_below_min_value"


def test_defaults_are_fast_and_the_organisation_is_configurable() -> None:
    config = EmulatorConfig()
    assert (
        config.fine_tuning_validate_seconds + config.fine_tuning_queue_seconds + config.fine_tuning_train_seconds <= 2
    )
    assert config.fine_tuning_available_until is None and not config.fine_tuning_closed(4e9)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        EmulatorConfig(fine_tuning_available_until="6 Jan 2027")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        Emulator(fine_tuning_available_until="soon").start()
    with Emulator(organization_name="acme", fine_tuning_train_seconds=5) as emu, ft_client(emu) as client:
        job = client.fine_tuning.jobs.create(training_file=upload(client, chat(10)), model=BASE, suffix="x")
        emu.advance_clock(10)
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded" and done.fine_tuned_model
        assert done.fine_tuned_model.startswith(f"ft:{BASE}:acme:x:")


def test_the_child_process_takes_the_same_options_and_answers_the_accessor(tmp_path: Any) -> None:
    with EmulatorProcess(data_dir=tmp_path / "data", fine_tuning_available_until="2000-01-01", **SLOW) as emu:
        command = emu.command()
        assert "--fine-tuning-available-until" in command and "--fine-tuning-train-seconds" in command
        with ft_client(emu) as client:
            training = upload(client, chat(10))
        response = post(emu, {"training_file": training, "model": BASE})
        assert response.status_code == 403 and error_of(response)["code"] == "fine_tuning_unavailable"
        assert emu.fine_tuning_jobs() == []
    with EmulatorProcess(data_dir=tmp_path / "data", **SLOW) as emu:
        job = post(emu, {"training_file": training, "model": BASE}).json()
        emu.advance_clock(10)
        (listed,) = emu.fine_tuning_jobs()
        assert (listed["id"], listed["status"]) == (job["id"], "queued"), "the file and the job persist"


def test_reset_forgets_jobs(training: str, openai_files_emulator: Emulator) -> None:
    post(openai_files_emulator, {"training_file": training, "model": BASE})
    assert openai_files_emulator.fine_tuning_jobs()
    openai_files_emulator.reset()
    assert openai_files_emulator.fine_tuning_jobs() == []


def test_events_after_an_unknown_event_is_a_400(openai_files_emulator: Emulator) -> None:
    with ft_client(openai_files_emulator) as client:
        job = client.fine_tuning.jobs.create(training_file=upload(client, chat(10)), model=BASE)
    response = requests.get(
        f"{openai_files_emulator.base_url}/fine_tuning/jobs/{job.id}/events?after=ftevent-nope",
        headers={"Authorization": f"Bearer {openai_files_emulator.api_key}"},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "after"


def test_pause_and_resume_shift_the_finish(openai_files_emulator: Emulator, training: str) -> None:
    with ft_client(openai_files_emulator) as client:
        job = client.fine_tuning.jobs.create(training_file=training, model=BASE)
        with pytest.raises(openai.BadRequestError, match="Cannot pause"):
            client.fine_tuning.jobs.pause(job.id)  # still validating_files
        openai_files_emulator.advance_clock(70)  # half of the 100 s of training
        paused = client.fine_tuning.jobs.pause(job.id)
        assert paused.status == "paused" and paused.estimated_finish is None
        steps = sum(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id, limit=100))
        openai_files_emulator.advance_clock(1000)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
        assert sum(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id, limit=100)) == steps
        with pytest.raises(openai.BadRequestError, match="Cannot pause"):
            client.fine_tuning.jobs.pause(job.id)
        resumed = client.fine_tuning.jobs.resume(job.id)
        assert resumed.status == "running"
        # Wall time passes between the calls too: stamps may be a second later.
        assert resumed.estimated_finish is not None and 0 <= resumed.estimated_finish - (job.created_at + 1120) <= 1
        openai_files_emulator.advance_clock(49)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
        openai_files_emulator.advance_clock(2)
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded" and done.finished_at == resumed.estimated_finish
        with pytest.raises(openai.BadRequestError, match="Cannot resume"):
            client.fine_tuning.jobs.resume(job.id)


def test_concurrent_readers_finish_a_job_once(openai_files_emulator: Emulator, training: str) -> None:
    with ft_client(openai_files_emulator) as client:
        job = client.fine_tuning.jobs.create(training_file=training, model=BASE)
    openai_files_emulator.advance_clock(121)

    def read(_: int) -> list[str]:
        with ft_client(openai_files_emulator) as own:
            return own.fine_tuning.jobs.retrieve(job.id).result_files

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(read, range(16)))
    assert all(files == seen[0] and len(files) == 1 for files in seen)
    results = [f for f in openai_files_emulator.files() if f["purpose"] == "fine-tune-results"]
    assert [f["id"] for f in results if f["id"] in seen[0]] == seen[0]
    (finished,) = [j for j in openai_files_emulator.fine_tuning_jobs() if j["id"] == job.id]
    assert finished["result_files"] == seen[0]
    events = [
        e
        for e in requests.get(
            f"{openai_files_emulator.base_url}/fine_tuning/jobs/{job.id}/events?limit=100",
            headers={"Authorization": f"Bearer {openai_files_emulator.api_key}"},
            timeout=30,
        ).json()["data"]
        if e["message"] == "The job has successfully completed"
    ]
    assert len(events) == 1


def test_list_jobs_without_metadata(openai_files_emulator: Emulator, training: str) -> None:
    openai_files_emulator.reset()
    with ft_client(openai_files_emulator) as client:
        training_file = upload(client, chat(10))
        plain = client.fine_tuning.jobs.create(training_file=training_file, model=BASE)
        client.fine_tuning.jobs.create(training_file=training_file, model=BASE, metadata={"k": "v"})
    response = requests.get(
        openai_files_emulator.base_url + "/fine_tuning/jobs?metadata=null",
        headers={"Authorization": f"Bearer {openai_files_emulator.api_key}"},
        timeout=30,
    )
    validate("ListPaginatedFineTuningJobsResponse", response.json())
    assert [j["id"] for j in response.json()["data"]] == [plain.id]


def test_cli_flags_parse_and_refuse_a_bad_day(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--fine-tuning-available-until", "2027-01-06", "--fine-tuning-train-seconds", "5"])
    assert (args.fine_tuning_available_until, args.fine_tuning_train_seconds) == ("2027-01-06", 5.0)
    with pytest.raises(SystemExit) as raised:
        parse_args(["--fine-tuning-available-until", "soon"])
    assert raised.value.code == 2 and "YYYY-MM-DD" in capsys.readouterr().err
