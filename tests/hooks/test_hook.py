"""Every hook method against a mocked transport: requests, pagination, retries, errors, atomic files."""

from __future__ import annotations

import email.utils
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.conftest import API_KEY, BASE_URL
from tests.support.hooks import record_waits

FILE = {
    "id": "file-abc123",
    "object": "file",
    "bytes": 11,
    "created_at": 1_700_000_000,
    "filename": "data.jsonl",
    "purpose": "batch",  # downloads in these tests: a purpose the service serves
    "status": "processed",
}


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None):
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


@pytest.fixture
def hook(mock_connection: str) -> OpenAIFilesHook:
    hook = OpenAIFilesHook()
    hook.waits = record_waits(hook)  # type: ignore[attr-defined]
    return hook


def test_get_file_sends_auth_and_identity_headers(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/files/file-abc123", json=FILE, headers={"x-request-id": "req_1"})
    assert hook.get_file("file-abc123") == FILE
    sent = requests_mock.last_request.headers
    assert sent["Authorization"] == f"Bearer {API_KEY}"
    assert sent["User-Agent"].startswith("airflow-provider-openai-files/")


def test_org_and_project_headers(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    from tests.conftest import set_connection

    set_connection(monkeypatch, extra={"organization": "org-9", "project": "proj-9"})
    requests_mock.get(f"{BASE_URL}/files/file-abc123", json=FILE)
    OpenAIFilesHook().get_file("file-abc123")
    assert requests_mock.last_request.headers["OpenAI-Organization"] == "org-9"
    assert requests_mock.last_request.headers["OpenAI-Project"] == "proj-9"


def test_list_files_follows_every_page(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    pages = [
        {
            "object": "list",
            "data": [dict(FILE, id="file-1"), dict(FILE, id="file-2")],
            "first_id": "file-1",
            "last_id": "file-2",
            "has_more": True,
        },
        {
            "object": "list",
            "data": [dict(FILE, id="file-3"), dict(FILE, id="file-4")],
            "first_id": "file-3",
            "last_id": "file-4",
            "has_more": True,
        },
        {
            "object": "list",
            "data": [dict(FILE, id="file-5")],
            "first_id": "file-5",
            "last_id": "file-5",
            "has_more": False,
        },
    ]
    requests_mock.get(f"{BASE_URL}/files", [{"json": page} for page in pages])
    ids = [f["id"] for f in hook.list_files(purpose="batch", order="asc", page_size=2)]
    assert ids == ["file-1", "file-2", "file-3", "file-4", "file-5"]
    queries = [r.qs for r in requests_mock.request_history]
    assert queries[0] == {"purpose": ["batch"], "order": ["asc"], "limit": ["2"]}
    assert queries[1]["after"] == ["file-2"] and queries[2]["after"] == ["file-4"]


def test_list_files_validates_arguments_before_any_request(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    with pytest.raises(OpenAIFilesValidationError):
        hook.list_files(order="sideways")
    with pytest.raises(OpenAIFilesValidationError):
        hook.list_files(page_size=0)
    assert requests_mock.call_count == 0


def test_delete_file_and_missing_ok(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.delete(f"{BASE_URL}/files/file-abc123", json={"id": "file-abc123", "object": "file", "deleted": True})
    assert hook.delete_file("file-abc123")["deleted"] is True
    requests_mock.delete(
        f"{BASE_URL}/files/file-gone", status_code=404, json=error_body("No such File object: file-gone", param="id")
    )
    assert hook.delete_file("file-gone", missing_ok=True) == {"id": "file-gone", "object": "file", "deleted": False}
    with pytest.raises(OpenAIFilesError) as info:
        hook.delete_file("file-gone")
    assert info.value.http_status == 404 and info.value.param == "id"


def test_test_connection(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/files", json={"object": "list", "data": [], "has_more": False})
    ok, message = hook.test_connection()
    assert ok and BASE_URL in message
    assert requests_mock.last_request.qs == {"limit": ["1"]}
    requests_mock.get(f"{BASE_URL}/files", status_code=401, json=error_body("Incorrect API key provided"))
    ok, message = hook.test_connection()
    assert not ok and "401" in message and API_KEY not in message


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(hook: OpenAIFilesHook, requests_mock: Any, status: int) -> None:
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123",
        [{"status_code": status, "json": error_body("busy", "server_error")}, {"json": FILE}],
    )
    assert hook.get_file("file-abc123")["id"] == "file-abc123"
    assert requests_mock.call_count == 2
    assert len(hook.waits) == 1 and 0 < hook.waits[0] <= 0.5  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_are_not_retried(hook: OpenAIFilesHook, requests_mock: Any, status: int) -> None:
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123",
        status_code=status,
        json=error_body("nope", code="some_code", param="id"),
        headers={"x-request-id": "req_42"},
    )
    with pytest.raises(OpenAIFilesError) as info:
        hook.get_file("file-abc123")
    err = info.value
    assert (err.http_status, err.error_type, err.code, err.param, err.request_id) == (
        status,
        "invalid_request_error",
        "some_code",
        "id",
        "req_42",
    )
    assert "req_42" in str(err) and "nope" in str(err)
    assert requests_mock.call_count == 1


def test_should_retry_false_wins_over_status(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/files/file-abc123", status_code=503, headers={"x-should-retry": "false"}, json={})
    with pytest.raises(OpenAIFilesError, match="x-should-retry"):
        hook.get_file("file-abc123")
    assert requests_mock.call_count == 1


def test_should_retry_true_retries_a_400(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123",
        [{"status_code": 400, "headers": {"x-should-retry": "true"}, "json": {}}, {"json": FILE}],
    )
    assert hook.get_file("file-abc123") == FILE


def test_insufficient_quota_is_not_retried(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123",
        status_code=429,
        json=error_body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
    )
    with pytest.raises(OpenAIFilesError, match="quota") as info:
        hook.get_file("file-abc123")
    assert info.value.http_status == 429
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ],
)
def test_server_wait_hints_are_honoured(
    hook: OpenAIFilesHook, requests_mock: Any, headers: dict[str, str], expected: float
) -> None:
    requests_mock.get(f"{BASE_URL}/files/file-abc123", [{"status_code": 429, "headers": headers}, {"json": FILE}])
    hook.get_file("file-abc123")
    assert hook.waits == [expected]  # type: ignore[attr-defined]


def test_retry_after_http_date(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123", [{"status_code": 503, "headers": {"retry-after": when}}, {"json": FILE}]
    )
    hook.get_file("file-abc123")
    assert 27 <= hook.waits[0] <= 30  # type: ignore[attr-defined]


def test_absurd_retry_after_falls_back_to_backoff(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123", [{"status_code": 429, "headers": {"retry-after": "86400"}}, {"json": FILE}]
    )
    hook.get_file("file-abc123")
    assert hook.waits[0] <= 0.5  # type: ignore[attr-defined]


def test_budget_exhausted_reports_last_status_and_request_id(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    responses = [
        {"status_code": 500, "json": error_body(f"boom {i}", "server_error"), "headers": {"x-request-id": f"req_{i}"}}
        for i in range(10)
    ]
    requests_mock.get(f"{BASE_URL}/files/file-abc123", responses)
    with pytest.raises(OpenAIFilesError) as info:
        hook.get_file("file-abc123")
    assert requests_mock.call_count == 6  # 1 attempt + max_retries (5)
    assert info.value.http_status == 500 and info.value.request_id == "req_5"
    assert "gave up after 6 attempt(s)" in str(info.value)
    waits = hook.waits  # type: ignore[attr-defined]
    assert len(waits) == 5
    # exponential backoff with at most 25% jitter: 0.5, 1, 2, 4, 8 seconds
    for wait, ceiling in zip(waits, [0.5, 1, 2, 4, 8], strict=True):
        assert 0.75 * ceiling <= wait <= ceiling


def test_connection_errors_and_timeouts_are_retried(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123",
        [
            {"exc": requests.exceptions.ConnectionError("refused")},
            {"exc": requests.exceptions.ConnectTimeout("slow connect")},
            {"exc": requests.exceptions.ReadTimeout("slow read")},
            {"json": FILE},
        ],
    )
    assert hook.get_file("file-abc123") == FILE
    assert requests_mock.call_count == 4


def test_tls_errors_are_not_retried(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/files/file-abc123", exc=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(OpenAIFilesError, match="certificate"):
        hook.get_file("file-abc123")
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    "bad_id", ["", "file/../x", "file-a/b", "file-a?x=1", "file-a#b", "file a", "..", "file-a\n", None, 7]
)
def test_file_ids_are_validated_before_any_request(
    hook: OpenAIFilesHook, requests_mock: Any, bad_id: Any, tmp_path: Path
) -> None:
    for call in (
        lambda: hook.get_file(bad_id),
        lambda: hook.delete_file(bad_id),
        lambda: hook.download_file(bad_id, tmp_path / "out"),
    ):
        with pytest.raises(OpenAIFilesValidationError, match="Invalid file id"):
            call()
    assert requests_mock.call_count == 0


# -- downloads -----------------------------------------------------------------------------------------

BINARY = bytes(range(256)) * 4 + b"\r\n\x00\xff"


def mock_download(requests_mock: Any, bodies: list[bytes], size: int = len(BINARY)) -> None:
    requests_mock.get(f"{BASE_URL}/files/file-abc123", json=dict(FILE, bytes=size))
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123/content",
        [{"content": body, "headers": {"x-request-id": f"req_d{i}"}} for i, body in enumerate(bodies)],
    )


def test_download_is_binary_safe(hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path) -> None:
    mock_download(requests_mock, [BINARY])
    dest = tmp_path / "out.bin"
    assert hook.download_file("file-abc123", dest) == str(dest)
    assert dest.read_bytes() == BINARY
    assert requests_mock.last_request.headers["Accept-Encoding"] == "identity"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_short_body_is_retried_and_never_published(hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path) -> None:
    mock_download(requests_mock, [BINARY[:100], BINARY])
    dest = tmp_path / "out.bin"
    hook.download_file("file-abc123", dest)
    assert dest.read_bytes() == BINARY
    assert len(hook.waits) == 1  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_failed_download_leaves_nothing(hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path) -> None:
    mock_download(requests_mock, [BINARY[:100]] * 6)
    dest = tmp_path / "out.bin"
    with pytest.raises(OpenAIFilesError, match="received 100 of"):
        hook.download_file("file-abc123", dest)
    assert list(tmp_path.iterdir()) == []


def test_download_refuses_existing_destination_unless_overwrite(
    hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    mock_download(requests_mock, [BINARY])
    with pytest.raises(OpenAIFilesValidationError, match="already exists"):
        hook.download_file("file-abc123", dest)
    assert requests_mock.call_count == 0 and dest.read_bytes() == b"old"
    hook.download_file("file-abc123", dest, overwrite=True)
    assert dest.read_bytes() == BINARY


def test_download_refuses_missing_parent(hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path) -> None:
    with pytest.raises(OpenAIFilesValidationError, match="parent directory does not exist"):
        hook.download_file("file-abc123", tmp_path / "nope" / "out.bin")
    assert requests_mock.call_count == 0


# -- uploads -------------------------------------------------------------------------------------------


def multipart_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """Parse a multipart body with the standard library's email parser."""
    import email.parser
    import email.policy

    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_filename(), part.get_payload(decode=True))
    return fields


def test_upload_streams_the_same_body_on_every_attempt(
    hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path
) -> None:
    source = tmp_path / "train.bin"
    source.write_bytes(BINARY * 50)
    bodies: list[dict[str, Any]] = []

    def answer(request: Any, context: Any) -> dict[str, Any]:
        # the streamed encoder, read as the socket would; the boundary differs per attempt, the fields must not
        raw = request.body.read()
        assert len(raw) == int(request.headers["Content-Length"])
        bodies.append(multipart_fields(raw, request.headers["Content-Type"]))
        if len(bodies) < 3:
            context.status_code = 502
            return error_body("bad gateway", "server_error")
        fields = bodies[-1]
        return dict(
            FILE, bytes=len(fields["file"][1]), filename=fields["file"][0], purpose=fields["purpose"][1].decode()
        )

    requests_mock.post(f"{BASE_URL}/files", json=answer)
    requests_mock.get(f"{BASE_URL}/files", json={"object": "list", "data": [], "has_more": False})
    created = hook.upload_file(source, "user_data", expires_after_seconds=3600)
    assert created["bytes"] == len(BINARY) * 50 and created["filename"] == "train.bin"
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    fields = bodies[0]
    assert fields["file"] == ("train.bin", BINARY * 50)
    assert fields["purpose"][1] == b"user_data"
    assert fields["expires_after[anchor]"][1] == b"created_at"
    assert fields["expires_after[seconds]"][1] == b"3600"


def record_file_bodies(requests_mock: Any, first_status: int) -> list[bytes]:
    """Answer POST /files with ``first_status`` once, then success; collect the file field of every attempt."""
    bodies: list[bytes] = []

    def answer(request: Any, context: Any) -> dict[str, Any]:
        bodies.append(multipart_fields(request.body.read(), request.headers["Content-Type"])["file"][1])
        if len(bodies) == 1:
            context.status_code = first_status
        return dict(FILE, bytes=len(bodies[-1]))

    requests_mock.post(f"{BASE_URL}/files", json=answer)
    requests_mock.get(f"{BASE_URL}/files", json={"object": "list", "data": [], "has_more": False})
    return bodies


def test_upload_from_a_file_object_rewinds_for_each_attempt(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    stream = io.BytesIO(b"prefix" + BINARY)
    stream.seek(6)
    bodies = record_file_bodies(requests_mock, first_status=500)
    hook.upload_file(stream, "assistants", filename="blob.bin")
    assert bodies == [BINARY, BINARY]


def test_upload_from_a_non_seekable_stream_is_spooled(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    bodies = record_file_bodies(requests_mock, first_status=503)
    hook.upload_file(Pipe(BINARY), "assistants", filename="pipe.bin")
    assert bodies == [BINARY, BINARY]


def test_retried_upload_reconciles_instead_of_duplicating(
    hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path
) -> None:
    source = tmp_path / "data.jsonl"
    source.write_bytes(b'{"a": 1}\n')
    created = dict(FILE, id="file-created", bytes=9, filename="data.jsonl", created_at=int(time.time()))
    requests_mock.post(f"{BASE_URL}/files", exc=requests.exceptions.ConnectionError("connection reset by peer"))
    requests_mock.get(f"{BASE_URL}/files", json={"object": "list", "data": [created], "has_more": False})
    assert hook.upload_file(source, "user_data")["id"] == "file-created"
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET"]


@pytest.mark.parametrize(
    ("make_source", "purpose", "kwargs", "message"),
    [
        (lambda d: d / "missing.jsonl", "fine-tune", {}, "does not exist"),
        (lambda d: d, "user_data", {}, "not a regular file"),
        (lambda d: _write(d / "empty.bin", b""), "user_data", {}, "is empty"),
        (lambda d: _write(d / "a.bin", b"x"), "training", {}, "Unknown purpose"),
        (lambda d: _write(d / "a.txt", b"x"), "fine-tune", {}, "must be .jsonl"),
        (lambda d: _write(d / "a.jsonl", b"{oops\n"), "batch", {}, "line 1"),
        (lambda d: _write(d / "a.bin", b"x"), "user_data", {"expires_after_seconds": 60}, "expires_after_seconds"),
        (
            lambda d: _write(d / "a.bin", b"x"),
            "user_data",
            {"expires_after_seconds": 2_592_001},
            "expires_after_seconds",
        ),
    ],
)
def test_bad_uploads_are_refused_before_any_request(
    hook: OpenAIFilesHook,
    requests_mock: Any,
    tmp_path: Path,
    make_source: Any,
    purpose: str,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(OpenAIFilesValidationError, match=message):
        hook.upload_file(make_source(tmp_path), purpose, **kwargs)
    assert requests_mock.call_count == 0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_oversized_file_without_uploads_api_is_refused(
    hook: OpenAIFilesHook, requests_mock: Any, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(512 * 1024 * 1024 + 1)  # sparse: no real disk used
    with pytest.raises(OpenAIFilesValidationError, match=r"at most 512\.0 MiB"):
        hook.upload_file(big, "user_data", multipart=False)
    assert requests_mock.call_count == 0


def test_errors_and_logs_never_show_the_key(
    hook: OpenAIFilesHook, requests_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    requests_mock.get(
        f"{BASE_URL}/files/file-abc123", [{"status_code": 500}, {"status_code": 401, "json": error_body("bad key")}]
    )
    with pytest.raises(OpenAIFilesError) as info:
        hook.get_file("file-abc123")
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)
    assert API_KEY not in caplog.text
    assert json.dumps(info.value.__dict__, default=str).find(API_KEY) == -1


def test_sha256_helper_sanity() -> None:
    # guards the fixtures above: the binary sample covers every byte value
    assert len(set(BINARY)) == 256 and hashlib.sha256(BINARY).hexdigest()


def test_multipart_body_matches_the_encoders_own_bytes() -> None:
    """The fast reader must put exactly what requests-toolbelt's MultipartEncoder encodes on the wire."""
    from requests_toolbelt import MultipartEncoder

    from airflow_openai_files.client.transport import MultipartBody
    from airflow_openai_files.transfer.sources import BoundedReader

    data = BINARY * 300
    fields = [("purpose", "fine-tune"), ("file", ('naïve "name".jsonl', BoundedReader(io.BytesIO(data), len(data))))]
    body = MultipartBody(fields)
    streamed = b"".join(iter(lambda: body.read(7000), b""))
    assert len(streamed) == len(body)
    boundary = body.content_type.split("boundary=")[1]
    reference = MultipartEncoder(
        fields=[
            ("purpose", "fine-tune"),
            ("file", ('naïve "name".jsonl', io.BytesIO(data), "application/octet-stream")),
        ],
        boundary=boundary,
    ).to_string()
    assert streamed == reference


def test_unregistered_storage_scheme_is_a_clear_error(hook: OpenAIFilesHook, requests_mock: Any) -> None:
    """Airflow 3.3 raises a bare ValueError for a scheme no provider registered (e.g. memory:// before attach())."""

    class UnregisteredPath:  # what ObjectStoragePath does for such a scheme, without touching global state
        protocol = "memory"
        fs = property(lambda self: self._fail())
        name = "key.jsonl"
        parent = property(lambda self: self)

        def _fail(self) -> Any:
            raise ValueError("No filesystem registered for scheme memory")

        def exists(self) -> bool:
            return self._fail()

        def open(self, mode: str = "rb") -> Any:
            return self._fail()

        def __str__(self) -> str:
            return "memory://bucket/key.jsonl"

    with pytest.raises(OpenAIFilesValidationError, match="attach"):
        hook.upload_file(UnregisteredPath(), "user_data")
    with pytest.raises(OpenAIFilesValidationError, match="attach"):
        hook.download_file("file-abc123", UnregisteredPath())
    assert requests_mock.call_count == 0
