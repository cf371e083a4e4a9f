"""Raw HTTP behaviour of the emulator: headers, auth, listing, validation, expiry, processing,
path safety and the Uploads API rules. Every JSON answer is validated against the spec."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_openai_files.emulator import Emulator
from tests.emulator.conftest import ValidatingSession
from tests.support.files import batch_lines, fine_tune_lines


def upload(
    http: ValidatingSession, content: bytes, purpose: str = "user_data", name: str = "a.txt", **fields: str
) -> requests.Response:
    return http.post("/files", files={"file": (name, content)}, data={"purpose": purpose, **fields})


def error_of(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_every_answer_has_request_id_and_processing_ms(http: ValidatingSession) -> None:
    for response in (upload(http, b"x"), http.get("/files"), http.get("/files/file-nope"), http.get("/nope")):
        assert re.fullmatch(r"req_[0-9a-f]{32}", response.headers["x-request-id"])
        assert int(response.headers["openai-processing-ms"]) >= 0


def test_auth_missing_and_bad_keys(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, api_key="sk-proj-correct-horse") as emu:
        missing = requests.get(f"{emu.base_url}/files")
        error = error_of(missing, 401)
        assert error["message"].startswith("You didn't provide an API key.")
        assert error["type"] == "invalid_request_error"
        bad = requests.get(f"{emu.base_url}/files", headers={"Authorization": "Bearer sk-proj-wrong-battery"})
        error = error_of(bad, 401)
        assert error["code"] == "invalid_api_key" and "wrong-battery" not in error["message"]
        assert error["message"].startswith("Incorrect API key provided: sk-pr")
        assert "x-request-id" in bad.headers
        ok = requests.get(f"{emu.base_url}/files", headers={"Authorization": "Bearer sk-proj-correct-horse"})
        assert ok.status_code == 200


def test_any_non_empty_key_without_configured_keys(openai_files_emulator: Emulator) -> None:
    assert requests.get(f"{openai_files_emulator.base_url}/files", headers={"Authorization": "Bearer whatever"}).ok
    assert (
        requests.get(f"{openai_files_emulator.base_url}/files", headers={"Authorization": "Bearer "}).status_code == 401
    )


def test_list_limits_order_cursor_and_purpose(http: ValidatingSession) -> None:
    ids = [upload(http, b"%d" % i).json()["id"] for i in range(5)]
    batch_id = upload(http, batch_lines(3, prefix="r"), purpose="batch", name="b.jsonl").json()["id"]

    body = http.get("/files", params={"limit": 2, "order": "asc"}).json()
    assert [f["id"] for f in body["data"]] == ids[:2]
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[0], ids[1], True)
    body = http.get("/files", params={"limit": 2, "order": "asc", "after": ids[1]}).json()
    assert [f["id"] for f in body["data"]] == ids[2:4]
    body = http.get("/files", params={"order": "asc", "after": ids[3], "purpose": "user_data"}).json()
    assert [f["id"] for f in body["data"]] == [ids[4]] and body["has_more"] is False
    body = http.get("/files").json()  # default: desc, limit 10000
    assert [f["id"] for f in body["data"]] == [batch_id, *reversed(ids)]
    assert [f["id"] for f in http.get("/files", params={"purpose": "batch"}).json()["data"]] == [batch_id]
    empty = http.get("/files", params={"purpose": "vision"}).json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}

    # a cursor naming a deleted file keeps working
    http.delete(f"/files/{ids[2]}")
    body = http.get("/files", params={"order": "asc", "after": ids[2], "purpose": "user_data"}).json()
    assert [f["id"] for f in body["data"]] == ids[3:]

    for value, code in (("0", "integer_below_min_value"), ("10001", "integer_above_max_value"), ("x", "invalid_type")):
        error = error_of(http.get("/files", params={"limit": value}), 400)
        assert (error["param"], error["code"]) == ("limit", code)
    assert http.get("/files", params={"limit": 10000}).ok
    assert error_of(http.get("/files", params={"order": "up"}), 400)["param"] == "order"


def test_create_validation_errors(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    assert error_of(upload(http, b"x", purpose="nope"), 400)["param"] == "purpose"
    no_file = http.post("/files", files={"purpose": (None, "user_data")})  # multipart, no file part
    assert error_of(no_file, 400)["param"] == "file"
    other = http.post("/files", data={"purpose": "user_data"}, files={"other": ("a", b"x")})
    assert error_of(other, 400)["message"] == "Unrecognized request argument supplied: other"
    missing_purpose = http.post("/files", files={"file": ("a.txt", b"x")})
    assert error_of(missing_purpose, 400)["param"] == "purpose"
    for purpose in ("fine-tune", "batch"):
        error = error_of(upload(http, fine_tune_lines(system=False), purpose=purpose, name="train.json"), 400)
        assert ".jsonl" in error["message"]
    not_multipart = http.post("/files", json={"purpose": "user_data"})
    assert error_of(not_multipart, 415) == {
        "message": "Invalid Content-Type header (application/json), expected multipart/form-data. (HINT: If"
        " you're using curl, you can pass -H 'Content-Type: multipart/form-data')",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert openai_files_emulator.files() == []
    assert list((openai_files_emulator.data_dir / "tmp").iterdir()) == []  # type: ignore[operator]


def test_too_large_file_is_refused_while_streaming(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, max_file_bytes=1000) as emu, ValidatingSession(emu) as http:
        assert upload(http, b"x" * 1000).ok
        error = error_of(upload(http, b"x" * 5000), 400)
        assert (error["message"], error["param"]) == ("File is too large.", "file")
        assert len(emu.files()) == 1
        assert list((tmp_path / "tmp").iterdir()) == []


def test_batch_size_cap(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, max_batch_bytes=100) as emu, ValidatingSession(emu) as http:
        error = error_of(upload(http, batch_lines(10, prefix="r"), purpose="batch", name="b.jsonl"), 400)
        assert "Batch" in error["message"] and emu.files() == []


def test_expires_after_and_expiry(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    fields = {"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}
    created = upload(http, b"x", **fields).json()
    assert created["expires_at"] == created["created_at"] + 3600
    keep = upload(http, b"y").json()
    assert "expires_at" not in keep and "status_details" not in keep  # omitted, never null
    for seconds in ("3599", "2592001", "soon"):
        bad = upload(http, b"x", **{**fields, "expires_after[seconds]": seconds})
        assert error_of(bad, 400)["param"] == "expires_after[seconds]"
    bad = upload(http, b"x", **{**fields, "expires_after[anchor]": "last_active_at"})
    assert error_of(bad, 400)["param"] == "expires_after[anchor]"

    openai_files_emulator.advance_clock(3601)
    assert error_of(http.get(f"/files/{created['id']}"), 404)["message"] == f"No such File object: {created['id']}"
    assert http.get(f"/files/{created['id']}/content").status_code == 404
    assert [f["id"] for f in http.get("/files").json()["data"]] == [keep["id"]]
    assert [f["id"] for f in openai_files_emulator.files()] == [keep["id"]]


def test_processing_delay_then_processed(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, processing_delay=30) as emu, ValidatingSession(emu) as http:
        created = upload(http, b"x").json()
        assert created["status"] == "uploaded"
        emu.advance_clock(31)
        assert http.get(f"/files/{created['id']}").json()["status"] == "processed"


@pytest.mark.parametrize(
    ("purpose", "content", "details"),
    [
        ("fine-tune", fine_tune_lines(3, system=False), "fine-tune files need at least 10 examples, found 3"),
        (
            "fine-tune",
            fine_tune_lines(5, system=False) + b"{oops\n" + fine_tune_lines(5, system=False),
            "line 6: not valid JSON: Expecting property name enclosed in double quotes",
        ),
        (
            "fine-tune",
            fine_tune_lines(5, system=False) + b'{"messages": []}\n' + fine_tune_lines(5, system=False),
            "line 6: 'messages' must be a non-empty list",
        ),
        (
            "batch",
            batch_lines(3, prefix="r") + batch_lines(1, prefix="r"),
            "line 4: duplicate custom_id 'r0' (first used on line 1)",
        ),
        (
            "batch",
            b'{"custom_id": "a", "method": "GET", "url": "/v1/x", "body": {}}\n',
            "line 1: 'method' must be 'POST', got 'GET'",
        ),
    ],
)
def test_malformed_jsonl_gets_error_status_when_asked(
    tmp_path: Path, http: ValidatingSession, purpose: str, content: bytes, details: str
) -> None:
    # By default, like OpenAI, content problems are not reported on the file ...
    created = upload(http, content, purpose=purpose, name="x.jsonl").json()
    assert created["status"] == "processed" and "status_details" not in created
    # ... with file_validation="status" (Azure OpenAI's way) they are.
    with Emulator(data_dir=tmp_path, file_validation="status") as emu, ValidatingSession(emu) as strict:
        created = upload(strict, content, purpose=purpose, name="x.jsonl").json()
        assert (created["status"], created["status_details"]) == ("error", details)
        again = strict.get(f"/files/{created['id']}").json()
        assert (again["status"], again["status_details"]) == ("error", details)
        assert emu.file(created["id"]) == again


def test_large_jsonl_is_checked_in_the_background(tmp_path: Path) -> None:
    with (
        Emulator(data_dir=tmp_path, file_validation="status", sync_check_bytes=10) as emu,
        ValidatingSession(emu) as http,
    ):
        created = upload(http, fine_tune_lines(3, system=False), purpose="fine-tune", name="t.jsonl").json()
        file_id = created["id"]
        for _ in range(200):
            current = http.get(f"/files/{file_id}").json()
            if current["status"] != "uploaded":
                break
        assert current["status"] == "error"


@pytest.mark.parametrize(
    "bad_id",
    [
        "..",
        "..%2F..%2Fetc%2Fpasswd",
        "file-..",
        "file-abc%00",
        "file-a.b",
        "%2e%2e",
        "file-" + "a" * 300,
        "emulator.sqlite3",
    ],
)
def test_odd_ids_never_touch_paths_outside_the_data_dir(http: ValidatingSession, bad_id: str) -> None:
    for suffix in ("", "/content"):
        response = http.get(f"/files/{bad_id}{suffix}")
        assert response.status_code in (400, 404)
        assert "error" in response.json()
    assert http.delete(f"/files/{bad_id}").status_code in (400, 404)


def test_raw_traversal_path(openai_files_emulator: Emulator) -> None:
    # requests normalises "..", so send the request line by hand
    import socket

    host, port = openai_files_emulator.base_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"GET /v1/files/../../../etc/passwd/content HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer k\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.split(b" ", 2)[1] in (b"400", b"404")
    assert b"root:" not in answer


# ---- Uploads -------------------------------------------------------------------------------------
def create_upload(http: ValidatingSession, nbytes: int, **extra: Any) -> dict[str, Any]:
    body = {"filename": "big.jsonl", "purpose": "user_data", "bytes": nbytes, "mime_type": "text/jsonl", **extra}
    response = http.post("/uploads", json=body)
    assert response.ok, response.text
    result: dict[str, Any] = response.json()
    return result


def add_part(http: ValidatingSession, upload_id: str, data: bytes) -> requests.Response:
    return http.post(f"/uploads/{upload_id}/parts", files={"data": ("blob", data)})


def test_upload_happy_path_orders_parts_and_checks_md5(
    openai_files_emulator: Emulator, http: ValidatingSession
) -> None:
    up = create_upload(http, 9, expires_after={"anchor": "created_at", "seconds": 7200})
    assert (up["status"], up["expires_at"], up["file"]) == ("pending", up["created_at"] + 3600, None)
    assert up["id"].startswith("upload_")
    parts = {data: add_part(http, up["id"], data).json() for data in (b"ccc", b"aaa", b"bbb")}
    assert all(p["id"].startswith("part_") and p["upload_id"] == up["id"] for p in parts.values())
    order = [parts[b"aaa"]["id"], parts[b"bbb"]["id"], parts[b"ccc"]["id"]]

    wrong = http.post(f"/uploads/{up['id']}/complete", json={"part_ids": order, "md5": "0" * 32})
    assert error_of(wrong, 400)["param"] == "md5"
    done = http.post(
        f"/uploads/{up['id']}/complete",
        json={"part_ids": order, "md5": hashlib.md5(b"aaabbbccc").hexdigest()},
    ).json()
    assert done["status"] == "completed"
    file = done["file"]
    assert (file["bytes"], file["filename"], file["expires_at"]) == (9, "big.jsonl", file["created_at"] + 7200)
    assert openai_files_emulator.content(file["id"]) == b"aaabbbccc"
    assert (
        openai_files_emulator.uploads()[0]["id"] == up["id"]
        and openai_files_emulator.uploads()[0]["status"] == "completed"
    )
    assert list((openai_files_emulator.data_dir / "parts").iterdir()) == []  # type: ignore[operator]
    # no parts, completion or cancel after completion
    assert error_of(add_part(http, up["id"], b"x"), 400)["param"] == "upload_id"
    assert http.post(f"/uploads/{up['id']}/complete", json={"part_ids": order}).status_code == 400
    assert http.post(f"/uploads/{up['id']}/cancel").status_code == 400


def test_upload_byte_count_and_foreign_parts(http: ValidatingSession) -> None:
    up = create_upload(http, 4)
    other = create_upload(http, 1)
    mine = add_part(http, up["id"], b"abc").json()["id"]
    foreign = add_part(http, other["id"], b"d").json()["id"]
    error = error_of(http.post(f"/uploads/{up['id']}/complete", json={"part_ids": [mine]}), 400)
    assert "does not match" in error["message"]
    error = error_of(http.post(f"/uploads/{up['id']}/complete", json={"part_ids": [mine, foreign]}), 400)
    assert error["param"] == "part_ids"
    assert error_of(http.post(f"/uploads/{up['id']}/complete", json={"part_ids": [mine, mine]}), 400)
    assert error_of(http.post(f"/uploads/{up['id']}/complete", json={}), 400)["param"] == "part_ids"
    # still pending after failed completions
    last = add_part(http, up["id"], b"d").json()["id"]
    assert http.post(f"/uploads/{up['id']}/complete", json={"part_ids": [mine, last]}).json()["status"] == ("completed")


def test_upload_create_validation(http: ValidatingSession) -> None:
    base = {"filename": "a.jsonl", "purpose": "fine-tune", "bytes": 10, "mime_type": "text/jsonl"}
    for field in ("filename", "purpose", "bytes", "mime_type"):
        body = {k: v for k, v in base.items() if k != field}
        assert error_of(http.post("/uploads", json=body), 400)["param"] == field
    assert error_of(http.post("/uploads", json={**base, "bytes": 8 * 1024**3 + 1}), 400)["param"] == "bytes"
    assert error_of(http.post("/uploads", json={**base, "purpose": "x"}), 400)["param"] == "purpose"
    assert error_of(http.post("/uploads", json={**base, "filename": "a.csv"}), 400)["param"] == "filename"
    bad_json = http.post("/uploads", data=b"{nope", headers={"content-type": "application/json"})
    assert "could not parse the JSON body" in error_of(bad_json, 400)["message"]
    assert http.post("/uploads/upload_nope/parts", files={"data": ("a", b"x")}).status_code == 404
    assert http.post("/uploads/..%2F..%2Fx/parts", files={"data": ("a", b"x")}).status_code == 404


def test_cancel_and_expiry(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    up = create_upload(http, 3)
    add_part(http, up["id"], b"abc")
    cancelled = http.post(f"/uploads/{up['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert error_of(add_part(http, up["id"], b"x"), 400)["param"] == "upload_id"

    up = create_upload(http, 3)
    openai_files_emulator.advance_clock(3600)
    assert error_of(add_part(http, up["id"], b"abc"), 400)["message"] == (
        "Cannot add parts to an Upload with status 'expired'."
    )
    assert error_of(http.post(f"/uploads/{up['id']}/complete", json={"part_ids": []}), 400)


def test_part_size_limit(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, max_part_bytes=10) as emu, ValidatingSession(emu) as http:
        up = create_upload(http, 11)
        assert error_of(add_part(http, up["id"], b"x" * 11), 400)["param"] == "data"
        assert add_part(http, up["id"], b"x" * 10).ok


def test_admin_api(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    created = upload(http, b"x").json()
    root = openai_files_emulator.base_url[: -len("/v1")]
    assert requests.get(f"{root}/_emulator/files").json() == [created]
    log = requests.get(f"{root}/_emulator/requests").json()
    assert log == [["POST", "/v1/files", 200]]
    added = requests.post(f"{root}/_emulator/faults", json={"path": "/v1/files", "status": 500})
    assert added.ok and len(added.json()["pending"]) == 1
    assert requests.post(f"{root}/_emulator/faults", json={"action": "explode"}).status_code == 400
    assert requests.post(f"{root}/_emulator/reset").ok
    assert openai_files_emulator.files() == [] and openai_files_emulator.request_log() == []
    assert requests.get(f"{root}/_emulator/faults").json() == []
    assert json.loads(requests.get(f"{root}/_emulator/health").text)["ok"] is True


def test_admin_clock_and_single_file(openai_files_emulator: Emulator, http: ValidatingSession) -> None:
    created = upload(http, b"x").json()
    root = openai_files_emulator.base_url[: -len("/v1")]
    one = requests.get(f"{root}/_emulator/files/{created['id']}").json()
    assert one.pop("content_path") == str(openai_files_emulator.content_path(created["id"])) and one == created
    assert requests.get(f"{root}/_emulator/files/file-nope").status_code == 404
    before = requests.get(f"{root}/_emulator/clock").json()["now"]
    assert requests.post(f"{root}/_emulator/clock", json={"advance": 60}).json()["now"] >= before + 60
    assert requests.post(f"{root}/_emulator/clock", json={"advance": -1}).status_code == 400
    assert openai_files_emulator.now() >= before + 60
