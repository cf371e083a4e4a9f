"""Files beyond the threshold go through the Uploads API: parallel parts, retried alone, cancelled on failure."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.support.files import sha256

MiB = 1024 * 1024
PART = 1 * MiB


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.bin"
    path.write_bytes(os.urandom(4 * PART + 12345))  # 5 parts, the last one short
    return path


def make_hook(concurrency: int = 4, threshold: int | None = 2 * MiB) -> OpenAIFilesHook:
    hook = OpenAIFilesHook(multipart_threshold=threshold, part_size=PART, max_concurrency=concurrency)
    hook.retry_policy.sleep = lambda _s: None
    return hook


def parts_posted(emulator: Any) -> list[tuple[str, str, int]]:
    return [entry for entry in emulator.request_log() if entry[1].endswith("/parts")]


def test_large_file_switches_to_parts_and_round_trips(
    openai_files_connection: Any, source: Path, tmp_path: Path
) -> None:
    emu = openai_files_connection
    hook = make_hook()
    # vision: a purpose whose content can be downloaded. The Upload declares the MIME type its name
    # implies (image/png); the emulator, like the service, refuses a vision Upload of any other type.
    created = hook.upload_file(source, "vision", filename="corpus.png")
    assert created["object"] == "file" and created["bytes"] == source.stat().st_size
    assert created["purpose"] == "vision" and created["filename"] == "corpus.png"
    assert len(parts_posted(emu)) == 5
    assert [f["id"] for f in emu.files()] == [created["id"]]
    assert sha256(emu.content_path(created["id"])) == sha256(source)
    out = Path(hook.download_file(created["id"], tmp_path / "back.bin"))
    assert sha256(out) == sha256(source)


def test_small_file_stays_on_files_endpoint_unless_forced(openai_files_connection: Any, source: Path) -> None:
    emu = openai_files_connection
    make_hook(threshold=None).upload_file(source, "user_data")  # default threshold is 512 MiB
    assert not parts_posted(emu)
    make_hook(threshold=None).upload_file(source, "user_data", multipart=True)
    assert len(parts_posted(emu)) == 5


def test_parts_really_overlap(openai_files_connection: Any, source: Path) -> None:
    hook = make_hook(concurrency=4)
    # Four parts must be in flight at the same moment or the barrier breaks: sequential sending fails.
    barrier = threading.Barrier(4, timeout=20)
    transport = hook._transport
    original = transport.post_multipart
    seen = []

    def gated(what: str, path: str, fields: Any, progress: Any = None) -> Any:
        if path.endswith("/parts") and len(seen) < 4:
            seen.append(path)
            barrier.wait()
        return original(what, path, fields, progress)

    transport.post_multipart = gated  # type: ignore[method-assign]
    created = hook.upload_file(source, "user_data")
    assert created["bytes"] == source.stat().st_size and not barrier.broken


def test_a_failed_part_is_retried_alone(openai_files_connection: Any, source: Path) -> None:
    emu = openai_files_connection
    emu.add_fault(method="POST", path="/v1/uploads/*/parts", times=1, status=500)
    created = make_hook().upload_file(source, "user_data")
    statuses = [status for _, _, status in parts_posted(emu)]
    assert sorted(statuses) == [200] * 5 + [500]
    assert [p for m, p, _ in emu.request_log() if p == "/v1/uploads"] == ["/v1/uploads"]  # one Upload
    assert sha256(emu.content_path(created["id"])) == sha256(source)


def test_unrecoverable_part_failure_cancels_the_upload(openai_files_connection: Any, source: Path) -> None:
    emu = openai_files_connection
    emu.add_fault(
        method="POST",
        path="/v1/uploads/*/parts",
        times=100,
        status=400,
        error={"message": "bad part", "type": "invalid_request_error"},
    )
    with pytest.raises(OpenAIFilesError, match="bad part"):
        make_hook().upload_file(source, "user_data")
    paths = [p for _, p, _ in emu.request_log()]
    assert any(p.endswith("/cancel") for p in paths)
    assert not any(p.endswith("/complete") for p in paths)
    assert emu.files() == []


def test_md5_mismatch_is_caught(openai_files_connection: Any, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = openai_files_connection
    import airflow_openai_files.transfer.uploads as uploads

    class WrongMD5:
        def __init__(self, **_kw: Any) -> None:
            self._inner = hashlib.md5(b"not the file")

        def update(self, data: bytes) -> None:
            pass

        def hexdigest(self) -> str:
            return self._inner.hexdigest()

    from types import SimpleNamespace

    monkeypatch.setattr(uploads, "hashlib", SimpleNamespace(md5=WrongMD5))
    with pytest.raises(OpenAIFilesError, match=r"(?i)md5"):
        make_hook().upload_file(source, "user_data")
    assert emu.files() == []
    assert any(p.endswith("/cancel") for _, p, _ in emu.request_log())


def test_cancel_active_uploads_stops_and_cancels(openai_files_connection: Any, source: Path) -> None:
    emu = openai_files_connection
    hook = make_hook(concurrency=2)
    started = threading.Event()
    transport = hook._transport
    original = transport.post_multipart

    def slow(what: str, path: str, fields: Any, progress: Any = None) -> Any:
        if path.endswith("/parts"):
            started.set()
            hook.cancel_active_uploads()  # what on_kill does, from the task's kill path
        return original(what, path, fields, progress)

    transport.post_multipart = slow  # type: ignore[method-assign]
    with pytest.raises(OpenAIFilesError, match="cancelled"):
        hook.upload_file(source, "user_data")
    assert started.is_set()
    assert any(p.endswith("/cancel") for _, p, _ in emu.request_log())
    assert emu.files() == []


def test_remote_stream_is_buffered_part_by_part(openai_files_connection: Any, source: Path) -> None:
    """An ObjectStoragePath on a non-local store has no local path: parts are read in order and buffered."""
    import fsspec
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    attach(protocol="memory", fs=fsspec.filesystem("memory"))
    remote = ObjectStoragePath("memory://bucket/corpus.bin")
    remote.parent.mkdir(parents=True, exist_ok=True)
    with remote.open("wb") as handle:
        handle.write(source.read_bytes())
    emu = openai_files_connection
    created = make_hook().upload_file(remote, "user_data")
    assert created["filename"] == "corpus.bin"
    assert len(parts_posted(emu)) == 5
    assert sha256(emu.content_path(created["id"])) == sha256(source)


@pytest.mark.slow
def test_600_mib_file_through_parts(openai_files_connection: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    block = os.urandom(MiB)
    with open(big, "wb") as handle:
        for _ in range(600):
            handle.write(block)
    emu = openai_files_connection
    hook = OpenAIFilesHook()  # defaults: 512 MiB threshold, 64 MiB parts, 4 at a time
    created = hook.upload_file(big, "user_data")
    assert len(parts_posted(emu)) == 10
    assert sha256(emu.content_path(created["id"])) == sha256(big)
    big.unlink()
