"""
Bad input is refused clearly, before any request, and nothing is written: one table, every entry point.

Each row runs one call (hook or operator) that must raise an ``OpenAIFilesError`` subclass whose
message names the problem. Afterwards the emulator has seen no ``/v1`` request since the row
started, holds exactly the files it held before, and no download destination (or ``.part`` file)
was created; a destination that existed is untouched. Add a row to cover a new rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.reliability.helpers import SECRET_KEY, assert_no_key, stored, tune, v1_log
from tests.support.connections import set_connection
from tests.support.files import batch_request, jsonl, sha256
from tests.support.task_helpers import make_context

MiB = 1024 * 1024
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


class Bench:
    """Where a row runs: a seeded file, a source folder, a download folder with one existing file."""

    def __init__(self, emu: Emulator, seed: Callable[..., dict[str, Any]], tmp_path: Path, monkeypatch: Any) -> None:
        self.emu = emu
        self.monkeypatch = monkeypatch
        self.target = seed(name="target.png")
        self.sources = tmp_path / "sources"
        self.sources.mkdir()
        self.downloads = tmp_path / "downloads"
        self.downloads.mkdir()
        self.existing = self.downloads / "existing.bin"
        self.existing.write_bytes(b"precious local data")
        self.hooks: list[OpenAIFilesHook] = []

    def file(self, name: str, data: bytes = b"some bytes") -> Path:
        path = self.sources / name
        path.write_bytes(data)
        return path

    def sparse(self, name: str, size: int) -> Path:
        path = self.sources / name
        with open(path, "wb") as handle:
            handle.truncate(size)  # no disk blocks used
        return path

    def connection(self, conn_id: str, **fields: Any) -> str:
        base = {"host": self.emu.base_url, "password": SECRET_KEY}
        set_connection(self.monkeypatch, conn_id, **{**base, **fields})
        return conn_id

    def hook(self, conn_id: str = "openai_files_default") -> OpenAIFilesHook:
        hook = OpenAIFilesHook(openai_conn_id=conn_id)
        tune(hook)
        self.hooks.append(hook)
        return hook

    def run(self, operator: Any) -> Any:
        tune(operator.hook)
        self.hooks.append(operator.hook)
        return operator.execute(make_context())

    def upload_op(self, file_path: Any, purpose: str, **kwargs: Any) -> Any:
        from airflow_openai_files.operators import OpenAIUploadFileOperator

        return self.run(OpenAIUploadFileOperator(task_id="upload", file_path=str(file_path), purpose=purpose, **kwargs))

    def download_op(self, file_id: Any, destination: Any, **kwargs: Any) -> Any:
        from airflow_openai_files.operators import OpenAIDownloadFileOperator

        return self.run(
            OpenAIDownloadFileOperator(task_id="download", file_id=file_id, destination=str(destination), **kwargs)
        )

    def delete_op(self, file_id: Any, **kwargs: Any) -> Any:
        from airflow_openai_files.operators import OpenAIDeleteFileOperator

        return self.run(OpenAIDeleteFileOperator(task_id="delete", file_id=file_id, **kwargs))

    def new_dest(self) -> Path:
        return self.downloads / "new.bin"


@dataclass
class Row:
    id: str
    call: Callable[[Bench], Any]
    message: str  # a substring the error must contain
    error: type[OpenAIFilesError] = OpenAIFilesValidationError
    xfail: str | None = None

    def param(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)


def _fine_tune(n: int, bad_line: int | None = None) -> bytes:
    return jsonl([b'{"messages": [oops' if i == bad_line else CHAT for i in range(1, n + 1)])


UPLOADS: list[tuple[str, Callable[[Bench], tuple[Any, str, dict[str, Any]]], str]] = [
    # (row id, (source, purpose, kwargs), message)
    ("missing-source", lambda b: (b.sources / "missing.jsonl", "user_data", {}), "does not exist"),
    ("directory-source", lambda b: (b.sources, "user_data", {}), "is not a regular file"),
    ("empty-file", lambda b: (b.file("empty.bin", b""), "user_data", {}), "is empty"),
    ("unknown-purpose", lambda b: (b.file("a.bin"), "training", {}), "Unknown purpose 'training'"),
    ("txt-for-fine-tune", lambda b: (b.file("train.txt", _fine_tune(12)), "fine-tune", {}), "must be .jsonl"),
    (
        "malformed-jsonl",
        lambda b: (b.file("t.jsonl", _fine_tune(12, bad_line=7)), "fine-tune", {}),
        "line 7: not valid JSON",
    ),
    (
        "too-few-fine-tune-examples",
        lambda b: (b.file("t.jsonl", _fine_tune(9)), "fine-tune", {}),
        "at least 10 examples, found 9",
    ),
    (
        "duplicate-batch-custom-id",
        lambda b: (
            b.file("b.jsonl", jsonl([batch_request("r-1"), batch_request("r-2"), batch_request("r-1")])),
            "batch",
            {},
        ),
        "line 3: duplicate custom_id 'r-1' (first used on line 1)",
    ),
    (
        "expires-too-short",
        lambda b: (b.file("a.bin"), "user_data", {"expires_after_seconds": 3599}),
        "expires_after_seconds",
    ),
    (
        "expires-too-long",
        lambda b: (b.file("a.bin"), "user_data", {"expires_after_seconds": 2_592_001}),
        "expires_after_seconds",
    ),
]

BAD_IDS = {
    "slash": "file-abc/../../uploads",
    "dot-dot": "..",
    "dot-dot-inside": "file-..abc",
    "encoded-dot-dot": "%2e%2e",
    "encoded-slash": "file-abc%2Fcontent",
    "question-mark": "file-abc?purpose=batch",
    "hash": "file-abc#x",
    "space": "file abc",
    "newline": "file-abc\n",
    "empty": "",
}

BAD_CONNECTIONS: dict[str, tuple[dict[str, Any], type[OpenAIFilesError], str]] = {
    "connection-without-key": ({"password": ""}, OpenAIFilesConfigError, "'password' (API Key) is empty"),
    "base-url-not-http": ({"host": "ftp://127.0.0.1/v1"}, OpenAIFilesConfigError, "must use http or https"),
    "base-url-with-space": ({"host": "http://127.0.0.1 /v1"}, OpenAIFilesConfigError, "contains whitespace"),
    "base-url-bad-port": ({"host": "http://127.0.0.1:99999/v1"}, OpenAIFilesConfigError, "not a valid URL"),
    "base-url-no-host": ({"host": "http:///v1"}, OpenAIFilesConfigError, "has no host name"),
    "timeout-not-a-number": ({"extra": {"timeout": "soon"}}, OpenAIFilesConfigError, "'timeout' must be a number"),
    "connect-timeout-not-a-number": (
        {"extra": {"connect_timeout": "x"}},
        OpenAIFilesConfigError,
        "'connect_timeout' must be a number",
    ),
    "max-retries-not-a-number": (
        {"extra": {"max_retries": "many"}},
        OpenAIFilesConfigError,
        "'max_retries' must be a whole number",
    ),
}


def _rows() -> list[Any]:
    rows: list[Row] = []
    for name, make, message in UPLOADS:
        rows.append(
            Row(f"hook-upload-{name}", lambda b, m=make: b.hook().upload_file(m(b)[0], m(b)[1], **m(b)[2]), message)
        )
        rows.append(Row(f"operator-upload-{name}", lambda b, m=make: b.upload_op(*m(b)[:2], **m(b)[2]), message))
    rows += [
        Row(
            "hook-upload-over-512MB-without-uploads-api",
            lambda b: b.hook().upload_file(b.sparse("big.bin", 512 * MiB + 1), "user_data", multipart=False),
            "POST /files accepts at most 512.0 MiB",
        ),
        Row(
            "operator-upload-expires-templated-out-of-range",
            lambda b: b.upload_op(b.file("a.bin"), "user_data", expires_after_seconds="60"),
            "expires_after_seconds",
        ),
    ]
    for name, bad in BAD_IDS.items():
        rows += [
            Row(f"hook-get-id-{name}", lambda b, i=bad: b.hook().get_file(i), "Invalid file id"),
            Row(f"hook-delete-id-{name}", lambda b, i=bad: b.hook().delete_file(i), "Invalid file id"),
            Row(
                f"hook-download-id-{name}", lambda b, i=bad: b.hook().download_file(i, b.new_dest()), "Invalid file id"
            ),
            Row(f"operator-download-id-{name}", lambda b, i=bad: b.download_op(i, b.new_dest()), "Invalid file id"),
        ]
        if bad.strip() != bad:
            continue  # the delete operator strips surrounding whitespace (a templated id), then validates
        rows += [
            Row(
                f"operator-delete-id-{name}",
                lambda b, i=bad: b.delete_op(i),
                "Invalid file id",
            ),
        ]
    rows += [
        Row(
            "hook-download-parent-missing",
            lambda b: b.hook().download_file(b.target["id"], b.downloads / "no" / "x.bin"),
            "parent directory does not exist",
        ),
        Row(
            "operator-download-parent-missing",
            lambda b: b.download_op(b.target["id"], b.downloads / "no" / "x.bin"),
            "parent directory does not exist",
        ),
        Row(
            "hook-download-exists-no-overwrite",
            lambda b: b.hook().download_file(b.target["id"], b.existing),
            "already exists",
        ),
        Row(
            "operator-download-exists-no-overwrite",
            lambda b: b.download_op(b.target["id"], b.existing),
            "already exists",
        ),
        Row(
            "hook-download-into-a-directory",
            lambda b: b.hook().download_file(b.target["id"], b.downloads, overwrite=True),
            "is a directory",
        ),
        Row(
            "hook-missing-connection",
            lambda b: b.hook("no_such_conn").get_file(b.target["id"]),
            "Connection 'no_such_conn' is not defined",
            OpenAIFilesConfigError,
        ),
        Row(
            "operator-missing-connection",
            lambda b: b.upload_op(b.file("a.bin"), "user_data", openai_conn_id="no_such_conn"),
            "Connection 'no_such_conn' is not defined",
            OpenAIFilesConfigError,
        ),
    ]
    for name, (fields, error, message) in BAD_CONNECTIONS.items():
        rows += [
            Row(
                f"hook-upload-{name}",
                lambda b, f=fields: b.hook(b.connection("bad_conn", **f)).upload_file(b.file("a.bin"), "user_data"),
                message,
                error,
            ),
            Row(
                f"hook-list-{name}",
                lambda b, f=fields: list(b.hook(b.connection("bad_conn", **f)).list_files()),
                message,
                error,
            ),
            Row(
                f"operator-download-{name}",
                lambda b, f=fields: b.download_op(
                    b.target["id"], b.new_dest(), openai_conn_id=b.connection("bad_conn", **f)
                ),
                message,
                error,
            ),
        ]
    return [row.param() for row in rows]


@pytest.mark.parametrize("row", _rows())
def test_bad_input_is_refused_before_any_request(
    emu: Emulator, seed: Callable[..., dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: Row
) -> None:
    bench = Bench(emu, seed, tmp_path, monkeypatch)
    files_before = stored(emu)
    local_before = {p.name: sha256(p) for p in bench.downloads.iterdir()}
    mark = len(emu.request_log())

    with pytest.raises(OpenAIFilesError) as info:
        row.call(bench)

    err = info.value
    assert isinstance(err, row.error), f"{type(err).__name__}: {err}"
    assert row.message in str(err), str(err)
    if "connection" in row.id or "base-url" in row.id or "timeout" in row.id or "retries" in row.id:
        assert "Connection 'bad_conn'" in str(err) or "no_such_conn" in str(err), "names the connection"
    assert_no_key(err)
    assert v1_log(emu, mark) == [], "a request was sent"
    assert stored(emu) == files_before, "files changed on the server"
    assert {p.name: sha256(p) for p in bench.downloads.iterdir() if p.is_file()} == local_before, (
        "something was written"
    )
    assert [p.name for p in bench.downloads.iterdir() if p.is_dir()] == [], "a folder was created"
    for hook in bench.hooks:
        hook.close()
