"""The official SDK's ``AzureOpenAI`` client against the emulator in Azure mode: the routes, headers and
answers Azure OpenAI gives, as the SDK sends them (``azure_endpoint``, ``api_version``, ``api_key`` or
``azure_ad_token_provider``)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AzureOpenAI, OpenAI

from airflow_openai_files.emulator import Emulator, EmulatorProcess
from tests.support.task_helpers import batch_lines, fine_tune_lines

KEY = "azure-resource-key-SECRET"
TOKEN = "eyJ.sdk-entra-token.SECRET"
GA = "2024-10-21"


pytestmark = pytest.mark.openai_files_emulator(flavor="azure", api_key=KEY, ad_tokens=[TOKEN], processing_delay=60)


def key_client(emu: Emulator, api_version: str = GA) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=emu.endpoint, api_version=api_version, api_key=KEY, max_retries=0)


def token_client(emu: Emulator) -> AzureOpenAI:
    return AzureOpenAI(
        azure_endpoint=emu.endpoint, api_version=GA, azure_ad_token_provider=lambda: TOKEN, max_retries=0
    )


def v1_client(emu: Emulator) -> OpenAI:
    """Microsoft's recommended client for the v1 routes: the plain OpenAI client, key as bearer."""
    return OpenAI(base_url=emu.base_url, api_key=KEY, max_retries=0)


@pytest.mark.parametrize("make", [key_client, token_client, v1_client], ids=["api-key", "entra-token", "v1"])
def test_files_lifecycle(openai_files_emulator: Emulator, make: Any) -> None:
    client = make(openai_files_emulator)
    raw = client.files.with_raw_response.create(
        file=("train.jsonl", io.BytesIO(fine_tune_lines())), purpose="fine-tune"
    )
    assert raw.status_code == 201  # Files - Upload: 201 Created with the new file's URL
    created = raw.parse()
    prefix = "/openai/v1" if make is v1_client else "/openai"
    assert raw.headers["location"] == f"{openai_files_emulator.endpoint}{prefix}/files/{created.id}"
    assert raw.headers["apim-request-id"] and "x-request-id" not in raw.headers
    assert created.status == "pending"

    openai_files_emulator.advance_clock(31)  # half the processing delay: the service works on it
    assert client.files.retrieve(created.id).status == "running"
    openai_files_emulator.advance_clock(30)
    assert client.files.retrieve(created.id).status == "processed"

    assert [f.id for f in client.files.list(purpose="fine-tune")] == [created.id]
    batch = client.files.create(file=("in.jsonl", io.BytesIO(batch_lines(3))), purpose="batch")
    assert client.files.content(batch.id).read() == batch_lines(3)
    assert client.files.delete(created.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert {f["id"] for f in openai_files_emulator.files()} == {batch.id}
    assert all(path.startswith(prefix + "/") for _, path, _ in openai_files_emulator.request_log())


def test_uploads_api(openai_files_emulator: Emulator) -> None:
    client = key_client(openai_files_emulator)
    body = fine_tune_lines(300)
    half = len(body) // 2
    upload = client.uploads.create(filename="big.jsonl", purpose="fine-tune", bytes=len(body), mime_type="text/jsonl")
    parts = [client.uploads.parts.create(upload.id, data=chunk).id for chunk in (body[:half], body[half:])]
    done = client.uploads.complete(upload.id, part_ids=parts, md5=hashlib.md5(body).hexdigest())
    assert done.status == "completed" and done.file is not None
    assert openai_files_emulator.content(done.file.id) == body
    assert ("POST", f"/openai/uploads/{upload.id}/complete", 200) in openai_files_emulator.request_log()


def test_file_validation_reports_errors_on_the_file(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path / "emu", flavor="azure", api_key=KEY) as emu:
        bad = key_client(emu).files.create(file=("bad.jsonl", io.BytesIO(b"{not json\n")), purpose="fine-tune")
        assert bad.status == "error" and bad.status_details


# -- Azure's gateway answers --------------------------------------------------------------------------------


def raw_get(emu: Emulator, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{emu.endpoint}{path}", headers=headers or {"api-key": KEY})


def test_missing_api_version_is_resource_not_found(openai_files_emulator: Emulator) -> None:
    answer = raw_get(openai_files_emulator, "/openai/files")
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "404", "message": "Resource not found"}}
    assert answer.headers["apim-request-id"]


def test_unknown_api_version(openai_files_emulator: Emulator) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        key_client(openai_files_emulator, api_version="1999-01-01").files.list()
    assert info.value.body == {"code": "BadRequest", "message": "API version not supported"}
    assert raw_get(openai_files_emulator, "/openai/v1/files?api-version=2024-10-21").status_code == 400
    assert raw_get(openai_files_emulator, "/openai/v1/files?api-version=preview").status_code == 200


@pytest.mark.parametrize(
    "version", ["2024-05-01-preview", "2024-08-01-preview", "2024-12-01-preview", "2025-02-01-preview"]
)
def test_preview_api_versions_of_vector_stores_are_accepted(openai_files_emulator: Emulator, version: str) -> None:
    """Azure serves vector stores from 2024-05-01-preview on: an SDK pinned to such a preview is answered."""
    client = key_client(openai_files_emulator, api_version=version)
    store = client.vector_stores.create(name="kb")
    assert client.vector_stores.retrieve(store.id).name == "kb"


def test_unknown_route_and_openai_routes_are_not_served(openai_files_emulator: Emulator) -> None:
    for path in ("/v1/files", "/openai/nothing?api-version=2024-10-21", "/openai/v1/nothing"):
        answer = raw_get(openai_files_emulator, path)
        assert answer.status_code == 404 and answer.json()["error"]["message"] == "Resource not found", path


def test_auth_answers(openai_files_emulator: Emulator) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong_key:
        AzureOpenAI(
            azure_endpoint=openai_files_emulator.endpoint, api_version=GA, api_key="nope", max_retries=0
        ).files.list()
    assert wrong_key.value.body == {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid"
        " key for an active subscription and use a correct regional API endpoint for your resource.",
    }
    with pytest.raises(openai.AuthenticationError) as wrong_token:
        AzureOpenAI(
            azure_endpoint=openai_files_emulator.endpoint, api_version=GA, azure_ad_token="other", max_retries=0
        ).files.list()
    assert "Access token is missing, invalid, audience is incorrect" in str(wrong_token.value)
    no_auth = httpx.get(f"{openai_files_emulator.endpoint}/openai/files?api-version={GA}")
    assert no_auth.status_code == 401 and no_auth.json()["error"]["code"] == "401"
    assert all(status == 401 for _, _, status in openai_files_emulator.request_log())


def test_emulator_process_plays_azure(tmp_path: Path) -> None:
    with EmulatorProcess(
        data_dir=tmp_path / "proc", flavor="azure", api_key=KEY, api_versions=["2025-04-01-preview"]
    ) as emu:
        assert emu.base_url == f"{emu.endpoint}/openai/v1"
        client = key_client(emu, api_version="2025-04-01-preview")
        created = client.files.create(file=("in.jsonl", io.BytesIO(batch_lines())), purpose="batch")
        assert emu.file(created.id)["status"] == "processed"
        with pytest.raises(openai.BadRequestError):
            key_client(emu, api_version=GA).files.list()  # only the versions given are accepted
        bad = client.files.create(file=("bad.jsonl", io.BytesIO(b"[]\n")), purpose="batch")
        assert bad.status == "error"  # file validation is on by default in Azure mode


# -- batches and fine-tuning jobs on the same routes (their routers get Azure's gateway for free) --------


def test_batches_through_azure_routes(tmp_path: Path) -> None:
    from tests.emulator.batch_support import CHAT, chat_line, jsonl

    with Emulator(data_dir=tmp_path / "emu", flavor="azure", api_key=KEY, batch_in_progress_seconds=10) as emu:
        client = key_client(emu)
        source = client.files.create(
            file=("requests.jsonl", io.BytesIO(jsonl(chat_line(i) for i in range(3)))), purpose="batch"
        )
        batch = client.batches.create(input_file_id=source.id, endpoint=CHAT, completion_window="24h")
        assert batch.status in ("validating", "in_progress")
        emu.advance_clock(11)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.output_file_id
        lines = client.files.content(done.output_file_id).read().splitlines()
        assert len(lines) == 3
        assert [b.id for b in client.batches.list()] == [batch.id]
        log = emu.request_log()
        assert ("POST", "/openai/batches", 200) in log and ("GET", f"/openai/batches/{batch.id}", 200) in log
        with pytest.raises(openai.AuthenticationError):
            AzureOpenAI(azure_endpoint=emu.endpoint, api_version=GA, api_key="x", max_retries=0).batches.list()


def test_fine_tuning_jobs_through_azure_routes(tmp_path: Path) -> None:
    with Emulator(
        data_dir=tmp_path / "emu",
        flavor="azure",
        ad_tokens=[TOKEN],
        fine_tuning_validate_seconds=1,
        fine_tuning_queue_seconds=1,
        fine_tuning_train_seconds=5,
    ) as emu:
        client = token_client(emu)
        training = client.files.create(file=("train.jsonl", io.BytesIO(fine_tune_lines(12))), purpose="fine-tune")
        assert training.status == "processed"
        job = client.fine_tuning.jobs.create(training_file=training.id, model="gpt-4o-mini-2024-07-18", suffix="az")
        emu.advance_clock(10)
        finished = client.fine_tuning.jobs.retrieve(job.id)
        assert finished.status == "succeeded" and finished.fine_tuned_model
        assert list(client.fine_tuning.jobs.list_events(job.id))
        assert ("POST", "/openai/fine_tuning/jobs", 200) in emu.request_log()
        missing_version = httpx.get(
            f"{emu.endpoint}/openai/fine_tuning/jobs", headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert missing_version.status_code == 404


def test_files_backend_refuses_unprocessed_files_in_azure_mode(tmp_path: Path) -> None:
    """The check batch and fine-tuning create handlers call (``FilesBackend.require_processed``)."""
    from airflow_openai_files.emulator.core.errors import EmulatorError

    for flavor in ("azure", "openai"):
        with Emulator(data_dir=tmp_path / flavor, flavor=flavor, processing_delay=60) as emu:
            created = OpenAI(base_url=emu.base_url, api_key=KEY, max_retries=0).files.create(
                file=("in.jsonl", io.BytesIO(batch_lines())), purpose="batch"
            )
            files = emu._state.backend("files")
            if flavor == "azure":
                with pytest.raises(EmulatorError) as info:
                    files.require_processed(created.id, "input_file_id")
                assert info.value.status == 400 and info.value.param == "input_file_id"
                assert "'pending'" in info.value.message
            else:
                assert files.require_processed(created.id, "input_file_id")["status"] == "uploaded"
            emu.advance_clock(61)
            assert files.require_processed(created.id, "input_file_id")["status"] == "processed"
            with pytest.raises(EmulatorError) as missing:
                files.require_processed("file-nope", "training_file")
            assert missing.value.status == 404 and missing.value.param == "training_file"
