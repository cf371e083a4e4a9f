"""The official openai SDK, pointed at the emulator, drives every Files and Uploads call."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import openai
import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.limits import DOWNLOADABLE_PURPOSES
from tests.emulator.conftest import VALIDATED, sdk_client
from tests.support.files import batch_lines, fine_tune_lines

ALL_BYTES = bytes(range(256)) * 4

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@pytest.mark.parametrize(
    ("purpose", "filename", "content"),
    [
        ("assistants", "notes.pdf", b"%PDF-1.4\n" + ALL_BYTES),
        ("batch", "requests.jsonl", batch_lines(3, prefix="r")),
        ("fine-tune", "train.jsonl", fine_tune_lines(12, system=False)),
        ("vision", "image.png", PNG),
        ("user_data", "data.bin", ALL_BYTES),
        ("evals", "eval.jsonl", b'{"item": {"input": "x", "ideal": "y"}}\n'),
    ],
)
def test_create_retrieve_content_delete(
    client: openai.OpenAI, openai_files_emulator: Emulator, purpose: str, filename: str, content: bytes
) -> None:
    created = client.files.create(file=(filename, io.BytesIO(content)), purpose=purpose)  # type: ignore[arg-type]
    assert created.id.startswith("file-") and len(created.id) == len("file-") + 24
    assert (created.bytes, created.filename, created.purpose) == (len(content), filename, purpose)
    assert created.status == "processed"
    assert abs(created.created_at - time.time()) < 5
    assert (created.expires_at is not None) == (purpose == "batch")  # batch files expire after 30 days
    if purpose == "batch":
        assert created.expires_at == created.created_at + 30 * 24 * 3600

    assert client.files.retrieve(created.id) == created
    if purpose in DOWNLOADABLE_PURPOSES:
        assert client.files.content(created.id).content == content
    else:  # what the service answers; the bytes are stored all the same
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.content(created.id)
        assert refused.value.body == {  # type: ignore[comparison-overlap]
            "message": f"Not allowed to download files of purpose: {purpose}",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    assert openai_files_emulator.content(created.id) == content

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(created.id)
    assert err.value.body["message"] == f"No such File object: {created.id}"  # type: ignore[index]
    assert err.value.body["param"] == "id"  # type: ignore[index]
    assert openai_files_emulator.files() == []
    assert {"OpenAIFile", "DeleteFileResponse", "ErrorResponse"} <= set(VALIDATED)


def test_binary_content_is_byte_exact(client: openai.OpenAI, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000 + b"\r\n\x00\xff"
    source = tmp_path / "blob.bin"
    source.write_bytes(payload)
    with source.open("rb") as handle:
        created = client.files.create(file=handle, purpose="vision")
    assert created.filename == "blob.bin"
    with client.files.with_streaming_response.content(created.id) as response:
        assert response.headers["content-length"] == str(len(payload))
        assert b"".join(response.iter_bytes()) == payload


def test_list_auto_paginates_over_several_pages(client: openai.OpenAI) -> None:
    ids = [client.files.create(file=(f"f{i}.txt", b"x"), purpose="user_data").id for i in range(7)]
    client.files.create(file=("t.jsonl", fine_tune_lines(system=False)), purpose="fine-tune")

    page = client.files.list(limit=2, purpose="user_data")
    assert len(page.data) == 2 and page.has_more
    seen = [f.id for f in client.files.list(limit=2, purpose="user_data")]  # auto-pagination: 4 pages
    assert seen == list(reversed(ids))  # default order: newest first
    assert [f.id for f in client.files.list(limit=3, order="asc", purpose="user_data")] == ids
    assert len(list(client.files.list())) == 8
    assert "ListFilesResponse" in VALIDATED


def test_wait_for_processing(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, processing_delay=0.5) as emu, sdk_client(emu) as client:
        created = client.files.create(file=("t.jsonl", fine_tune_lines(system=False)), purpose="fine-tune")
        assert created.status == "uploaded"
        began = time.monotonic()
        done = client.files.wait_for_processing(created.id, poll_interval=0.1)
        assert done.status == "processed"
        assert 0.3 < time.monotonic() - began < 5


def test_wait_for_processing_returns_error_status(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, file_validation="status") as emu, sdk_client(emu) as client:
        created = client.files.create(file=("t.jsonl", fine_tune_lines(3, system=False)), purpose="fine-tune")
        done = client.files.wait_for_processing(created.id, poll_interval=0.1)
        assert done.status == "error"
        assert done.status_details == "fine-tune files need at least 10 examples, found 3"


def test_wait_for_processing_default_is_processed_like_openai(client: openai.OpenAI) -> None:
    """OpenAI reports a bad training file on the fine-tuning job, not on the file."""
    created = client.files.create(file=("t.jsonl", fine_tune_lines(3, system=False)), purpose="fine-tune")
    done = client.files.wait_for_processing(created.id, poll_interval=0.1)
    assert (done.status, done.status_details) == ("processed", None)


def test_upload_file_chunked(client: openai.OpenAI, openai_files_emulator: Emulator, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes -> 5 parts of 256 KiB
    source = tmp_path / "train.jsonl"
    source.write_bytes(payload)
    upload = client.uploads.upload_file_chunked(
        file=source,
        mime_type="application/octet-stream",
        purpose="batch",
        part_size=256 * 1024,
        md5=hashlib.md5(payload).hexdigest(),
    )
    assert upload.status == "completed"
    assert upload.file is not None and upload.file.bytes == len(payload)
    assert upload.file.filename == "train.jsonl"
    assert client.files.content(upload.file.id).content == payload
    assert sum(1 for m, p, _ in openai_files_emulator.request_log() if p.endswith("/parts")) == 5
    assert {"Upload", "UploadPart"} <= set(VALIDATED)


def test_upload_file_chunked_from_bytes(client: openai.OpenAI) -> None:
    data = fine_tune_lines(20, system=False)
    upload = client.uploads.upload_file_chunked(
        file=data, filename="t.jsonl", bytes=len(data), mime_type="text/jsonl", purpose="batch", part_size=100
    )
    assert upload.file is not None and upload.file.status == "processed"
    assert client.files.content(upload.file.id).content == data


def test_errors_map_to_sdk_exceptions(openai_files_emulator: Emulator, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.files.delete("file-doesnotexist")
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("x.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "purpose"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("x.txt", b"{}"), purpose="batch")  # not .jsonl
    with pytest.raises(openai.BadRequestError):
        client.files.list(limit=0)
    with pytest.raises(openai.BadRequestError):
        client.uploads.create(bytes=-1, filename="a.txt", mime_type="text/plain", purpose="user_data")
    with pytest.raises(openai.NotFoundError):
        client.uploads.complete("upload_nope", part_ids=[])


def test_authentication_error(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, api_key=["sk-right-key-000", "sk-other-key-111"]) as emu:
        with sdk_client(emu, api_key="sk-wrong-key-123456") as client, pytest.raises(openai.AuthenticationError) as err:
            client.files.list()
        body = err.value.body
        assert body["code"] == "invalid_api_key"  # type: ignore[index]
        assert "sk-wrong-key-123456" not in body["message"]  # type: ignore[index]
        assert body["message"].startswith("Incorrect API key provided: sk-wr")  # type: ignore[index]
        for key in ("sk-right-key-000", "sk-other-key-111"):
            with sdk_client(emu, api_key=key) as client:
                assert list(client.files.list()) == []
