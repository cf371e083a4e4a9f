"""The emulator refuses what the service refuses (issue 11): which purposes can be uploaded and
downloaded, unknown arguments, MIME types of Uploads, the Content-Type of ``POST /files``, and
the files only the service creates. Every JSON answer is validated against the spec."""

from __future__ import annotations

import io
from typing import Any

import openai
import pytest
import requests

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.limits import ALL_PURPOSES, DOWNLOADABLE_PURPOSES, SERVICE_PURPOSES, UPLOAD_PURPOSES
from tests.emulator.conftest import ValidatingSession
from tests.support.files import batch_lines

# purpose: (upload allowed, download allowed) -- the same table is in docs/emulator.md.
PURPOSE_TABLE = {
    "assistants": (True, False),
    "batch": (True, True),
    "fine-tune": (True, False),
    "vision": (True, True),
    "user_data": (True, False),
    "evals": (True, False),
    "assistants_output": (False, True),
    "batch_output": (False, True),
    "fine-tune-results": (False, True),
}
FILENAMES = {"batch": "in.jsonl", "fine-tune": "train.jsonl"}
BAD_PURPOSE = "{!r} is not one of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'] - 'purpose'"


def error_of(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_the_table_covers_every_purpose_and_matches_limits() -> None:
    assert set(PURPOSE_TABLE) == set(ALL_PURPOSES)
    assert {p for p, (up, _) in PURPOSE_TABLE.items() if up} == set(UPLOAD_PURPOSES)
    assert {p for p, (_, down) in PURPOSE_TABLE.items() if down} == set(DOWNLOADABLE_PURPOSES)


@pytest.mark.parametrize(("purpose", "upload_allowed", "download_allowed"), [(p, *v) for p, v in PURPOSE_TABLE.items()])
def test_purpose_table(
    openai_files_emulator: Emulator, http: ValidatingSession, purpose: str, upload_allowed: bool, download_allowed: bool
) -> None:
    content = batch_lines(2, prefix="r")
    filename = FILENAMES.get(purpose, "data.jsonl")
    response = http.post("/files", files={"file": (filename, content)}, data={"purpose": purpose})
    upload_via_uploads = http.post(
        "/uploads", json={"filename": filename, "purpose": purpose, "bytes": 1, "mime_type": "image/png"}
    )
    if upload_allowed:
        assert response.ok, response.text
        assert upload_via_uploads.ok, upload_via_uploads.text
        file = response.json()
    else:
        error = error_of(response, 400)
        assert (error["message"], error["param"]) == (BAD_PURPOSE.format(purpose), "purpose")
        assert error_of(upload_via_uploads, 400)["param"] == "purpose"
        file = openai_files_emulator.create_service_file(purpose, filename, content)
    assert file["purpose"] == purpose and file["status"] == "processed"
    listed = http.get("/files", params={"purpose": purpose}).json()["data"]
    assert [f["id"] for f in listed] == [file["id"]]
    assert http.get(f"/files/{file['id']}").json() == file

    download = http.get(f"/files/{file['id']}/content")
    if download_allowed:
        assert download.status_code == 200 and download.content == content
    else:
        assert error_of(download, 400) == {
            "message": f"Not allowed to download files of purpose: {purpose}",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    assert openai_files_emulator.content(file["id"]) == content  # stored either way
    assert http.delete(f"/files/{file['id']}").json()["deleted"] is True
    assert openai_files_emulator.files() == []


@pytest.mark.parametrize("purpose", [p for p in UPLOAD_PURPOSES if p not in DOWNLOADABLE_PURPOSES])
def test_sdk_gets_bad_request_for_non_downloadable_purposes(client: openai.OpenAI, purpose: str) -> None:
    created = client.files.create(
        file=(FILENAMES.get(purpose, "a.jsonl"), io.BytesIO(batch_lines(1, prefix="r"))), purpose=purpose
    )  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.content(created.id)
    assert refused.value.status_code == 400
    assert refused.value.body["message"] == f"Not allowed to download files of purpose: {purpose}"  # type: ignore[index]


@pytest.mark.parametrize("purpose", ["batch", "vision", *SERVICE_PURPOSES])
def test_sdk_gets_bytes_for_downloadable_purposes(
    client: openai.OpenAI, openai_files_emulator: Emulator, purpose: str
) -> None:
    payload = bytes(range(256)) * 3
    if purpose in SERVICE_PURPOSES:
        file_id = openai_files_emulator.create_service_file(purpose, "out.jsonl", payload)["id"]
        assert [f.id for f in client.files.list(purpose=purpose)] == [file_id]
    else:
        file_id = client.files.create(file=(FILENAMES.get(purpose, "a.png"), payload), purpose=purpose).id  # type: ignore[arg-type]
    assert client.files.content(file_id).content == payload
    assert client.files.delete(file_id).deleted is True


def test_sdk_refuses_service_purposes_on_upload(client: openai.OpenAI) -> None:
    for purpose in SERVICE_PURPOSES:
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.create(file=("out.jsonl", b"{}\n"), purpose=purpose)  # type: ignore[arg-type]
        assert refused.value.body["message"] == BAD_PURPOSE.format(purpose)  # type: ignore[index]


def test_unknown_form_field_on_create_file(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    response = http.post("/files", files={"file": ("a.txt", b"x")}, data={"purpose": "user_data", "colour": "red"})
    assert error_of(response, 400) == {
        "message": "Unrecognized request argument supplied: colour",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    two = http.post("/files", files={"file": ("a.txt", b"x")}, data={"purpose": "user_data", "b": "1", "a": "2"})
    assert error_of(two, 400)["message"] == "Unrecognized request arguments supplied: a, b"
    assert openai_files_emulator.files() == []
    assert list((openai_files_emulator.data_dir / "tmp").iterdir()) == []  # type: ignore[operator]


def test_unknown_json_fields_on_uploads(http: ValidatingSession) -> None:
    base = {"filename": "a.jsonl", "purpose": "batch", "bytes": 3, "mime_type": "text/jsonl"}
    error = error_of(http.post("/uploads", json={**base, "md5": "x"}), 400)
    assert error["message"] == "Unrecognized request argument supplied: md5"
    nested = {**base, "expires_after": {"anchor": "created_at", "seconds": 3600, "when": 1}}
    assert error_of(http.post("/uploads", json=nested), 400)["message"].endswith("supplied: when")
    upload = http.post("/uploads", json=base).json()
    part = http.post(f"/uploads/{upload['id']}/parts", files={"data": ("d", b"abc")}).json()
    extra = {"part_ids": [part["id"]], "checksum": "x"}
    assert error_of(http.post(f"/uploads/{upload['id']}/complete", json=extra), 400)["message"].endswith("checksum")
    assert http.post(f"/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}).json()["status"] == (
        "completed"
    )


@pytest.mark.parametrize(("mime_type", "ok"), [("image/png", True), ("image/jpeg", True), ("text/plain", False)])
def test_upload_mime_type_is_checked_against_the_purpose(http: ValidatingSession, mime_type: str, ok: bool) -> None:
    body = {"filename": "a.png", "purpose": "vision", "bytes": 3, "mime_type": mime_type}
    response = http.post("/uploads", json=body)
    if ok:
        assert response.ok, response.text
    else:
        error = error_of(response, 400)
        assert error["param"] == "mime_type" and "'text/plain'" in error["message"]


def test_sdk_vision_upload_with_text_mime_type_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.uploads.create(bytes=3, filename="a.png", mime_type="text/plain", purpose="vision")
    assert refused.value.body["param"] == "mime_type"  # type: ignore[index]


def test_service_files_through_the_admin_api(openai_files_emulator: Emulator) -> None:
    root = openai_files_emulator.base_url[: -len("/v1")]
    created = requests.post(
        f"{root}/_emulator/service_files",
        json={"purpose": "fine-tune-results", "filename": "step_metrics.csv", "content_base64": "c3RlcCwx"},
    ).json()
    assert (created["purpose"], created["bytes"]) == ("fine-tune-results", 6)
    assert openai_files_emulator.content(created["id"]) == b"step,1"
    bad = requests.post(f"{root}/_emulator/service_files", json={"purpose": "x", "content_base64": ""})
    assert bad.status_code == 400


def test_airflow_connection_value(openai_files_emulator: Emulator) -> None:
    import json

    assert json.loads(openai_files_emulator.airflow_connection()) == {
        "conn_type": "openai_files",
        "host": openai_files_emulator.base_url,
        "password": openai_files_emulator.api_key,
    }
    value = json.loads(openai_files_emulator.airflow_connection(timeout=30, max_retries=0))
    assert value["extra"] == {"timeout": 30, "max_retries": 0}


def test_missing_server_stack_gives_an_install_hint() -> None:
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'uvicorn' else real(name, *a)\n"
        "import airflow_openai_files.emulator as e\n"
        "try:\n    e.Emulator\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "uvicorn" in out and "pip install 'airflow-provider-openai-files[emulator]'" in out
