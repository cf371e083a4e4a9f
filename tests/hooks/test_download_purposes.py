"""Downloads by purpose (issue 11): the content the service serves comes back byte for byte; a refused
purpose fails at once, with one request, no retries, and a message that says what can be downloaded."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.exceptions import OpenAIFilesRequestError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.limits import DOWNLOADABLE_PURPOSES, SERVICE_PURPOSES, UPLOAD_PURPOSES
from airflow_openai_files.operators import OpenAIDownloadFileOperator
from tests.support.files import batch_lines, fine_tune_lines, sha256
from tests.support.hooks import record_waits
from tests.support.task_helpers import make_context

REFUSED = [purpose for purpose in UPLOAD_PURPOSES if purpose not in DOWNLOADABLE_PURPOSES]
#: what each refused purpose is uploaded as: (filename, content)
REFUSED_FILES = {
    "assistants": ("notes.txt", b"notes for an assistant\n"),
    "user_data": ("report.pdf", b"%PDF-1.4 not really\n"),
    "fine-tune": ("train.jsonl", fine_tune_lines()),
    "evals": ("eval.jsonl", b'{"item": {"input": "2+2", "expected": "4"}}\n'),
}


def test_the_table_covers_every_refused_purpose() -> None:
    assert sorted(REFUSED) == sorted(REFUSED_FILES) == ["assistants", "evals", "fine-tune", "user_data"]


@pytest.fixture
def hook(openai_files_connection: Any) -> OpenAIFilesHook:
    hook = OpenAIFilesHook()
    hook.waits = record_waits(hook)  # type: ignore[attr-defined]
    return hook


def content_requests(emulator: Any, file_id: str) -> list[int]:
    return [status for method, path, status in emulator.request_log() if path == f"/v1/files/{file_id}/content"]


@pytest.mark.parametrize("purpose", REFUSED)
def test_refused_purpose_fails_at_once_and_says_what_can_be_downloaded(
    openai_files_connection: Any, hook: OpenAIFilesHook, tmp_path: Path, purpose: str
) -> None:
    name, body = REFUSED_FILES[purpose]
    created = hook.upload_file(io.BytesIO(body), purpose, filename=name)
    dest = tmp_path / "out" / name
    dest.parent.mkdir()

    with pytest.raises(AirflowFailException) as info:
        hook.download_file(created["id"], dest)

    err = info.value
    assert isinstance(err, OpenAIFilesRequestError) and err.http_status == 400
    message = str(err)
    assert created["id"] in message and name in message
    assert f"Not allowed to download files of purpose: {purpose}" in message  # the service's own words
    assert f"has purpose {purpose!r}" in message
    assert all(downloadable in message for downloadable in DOWNLOADABLE_PURPOSES)
    assert content_requests(openai_files_connection, created["id"]) == [400]  # one request
    assert hook.waits == []  # type: ignore[attr-defined]  # and no retries
    assert list(dest.parent.iterdir()) == []  # nothing written, no .part left behind


def test_operator_fails_the_task_without_task_retries(openai_files_connection: Any, tmp_path: Path) -> None:
    created = OpenAIFilesHook().upload_file(io.BytesIO(fine_tune_lines()), "fine-tune", filename="train.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    op = OpenAIDownloadFileOperator(task_id="download", file_id=created["id"], destination=out / "t.jsonl")
    with pytest.raises(AirflowFailException, match="has purpose 'fine-tune'"):  # Airflow never retries these
        op.execute(make_context())
    assert content_requests(openai_files_connection, created["id"]) == [400]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("purpose", "name", "body"),
    [
        ("batch", "requests.jsonl", batch_lines(3)),
        ("vision", "chart.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
    ],
)
def test_uploaded_downloadable_purposes_round_trip(
    openai_files_connection: Any, hook: OpenAIFilesHook, tmp_path: Path, purpose: str, name: str, body: bytes
) -> None:
    created = hook.upload_file(io.BytesIO(body), purpose, filename=name)
    out = Path(hook.download_file(created["id"], tmp_path / name))
    assert sha256(out) == sha256(body)
    assert content_requests(openai_files_connection, created["id"]) == [200]


@pytest.mark.parametrize("purpose", SERVICE_PURPOSES)
def test_service_created_files_download(
    openai_files_connection: Any, hook: OpenAIFilesHook, tmp_path: Path, purpose: str
) -> None:
    body = b'{"id": "batch_req_1", "custom_id": "req-0", "response": {"status_code": 200}}\n'
    created = openai_files_connection.create_service_file(purpose, f"{purpose}.jsonl", body)
    out = Path(hook.download_file(created["id"], tmp_path / "out.jsonl"))
    assert out.read_bytes() == body
