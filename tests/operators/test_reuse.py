"""A retried upload reuses only what an earlier try uploaded from the same content.

Airflow 3.3's task state store is stood in for by :class:`FakeStateStore` (the same get/set/delete
over one task instance's scope); older Airflow is a context without one.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.limits import MiB
from airflow_openai_files.operators import OpenAIUploadFileOperator
from airflow_openai_files.transfer import uploads as _uploads


class FakeStateStore:
    """``context["task_state_store"]`` of one task instance: kept across tries, JSON values only."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        import json

        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def context(try_number: int, store: FakeStateStore | None, run_start: datetime | None = None) -> dict[str, Any]:
    ti = SimpleNamespace(try_number=try_number, dag_id="d", run_id="r", task_id="upload", map_index=-1)
    ctx: dict[str, Any] = {
        "ti": ti,
        "dag_run": SimpleNamespace(start_date=run_start, queued_at=None),
        "params": {},
    }
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def run(path: Path, ctx: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    op = OpenAIUploadFileOperator(task_id="upload", file_path=str(path), purpose="user_data", **kwargs)
    return op.execute(ctx)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "note.txt"
    path.write_bytes(b"teh quick brown fox\n")
    return path


def log_text(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    return caplog.text + capsys.readouterr().out


# -- Airflow 3.3+: the task state store ------------------------------------------------------------


def test_one_changed_byte_is_uploaded_again_not_reused(
    openai_files_connection: Any, text_file: Path, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    emu, store = openai_files_connection, FakeStateStore()
    first = run(text_file, context(1, store))
    text_file.write_bytes(b"the quick brown fox\n")  # same name, same size, one byte differs
    with caplog.at_level(logging.INFO):
        second = run(text_file, context(2, store))
    assert second["id"] != first["id"]
    assert emu.content(second["id"]) == b"the quick brown fox\n"
    assert "differs in sha256" in log_text(caplog, capsys)


def test_same_content_is_reused_and_says_so(
    openai_files_connection: Any, text_file: Path, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    emu, store = openai_files_connection, FakeStateStore()
    first = run(text_file, context(1, store))
    with caplog.at_level(logging.INFO):
        second = run(text_file, context(2, store))
    assert second["id"] == first["id"]
    assert [f["id"] for f in emu.files()] == [first["id"]]
    logged = log_text(caplog, capsys)
    assert f"Try 2: reusing uploaded file {first['id']} recorded by try 1" in logged
    assert "same filename, bytes, sha256, purpose" in logged


def test_recorded_file_deleted_meanwhile_is_uploaded_again(openai_files_connection: Any, text_file: Path) -> None:
    store = FakeStateStore()
    first = run(text_file, context(1, store))
    OpenAIFilesHook().delete_file(first["id"])
    second = run(text_file, context(2, store))
    assert second["id"] != first["id"]
    assert openai_files_connection.content(second["id"]) == text_file.read_bytes()


def test_reuse_on_retry_false_always_uploads(openai_files_connection: Any, text_file: Path) -> None:
    store = FakeStateStore()
    first = run(text_file, context(1, store), reuse_on_retry=False)
    second = run(text_file, context(2, store), reuse_on_retry=False)
    assert second["id"] != first["id"] and len(openai_files_connection.files()) == 2


def test_a_first_try_never_reuses(openai_files_connection: Any, text_file: Path) -> None:
    store = FakeStateStore()
    first = run(text_file, context(1, store))
    again = run(text_file, context(1, store))  # the task run again on purpose, not retried
    assert again["id"] != first["id"]


def test_a_file_object_is_fingerprinted_in_place(openai_files_connection: Any) -> None:
    import io

    store, body = FakeStateStore(), io.BytesIO(b"xx hello world\n")
    body.read(3)  # an upload sends from where the stream stands
    ops = [
        OpenAIUploadFileOperator(task_id="upload", file_path=body, purpose="user_data", filename="h.txt")
        for _ in range(2)
    ]
    first = ops[0].execute(context(1, store))  # type: ignore[arg-type]
    assert openai_files_connection.content(first["id"]) == b"hello world\n"
    body.seek(3)
    assert ops[1].execute(context(2, store))["id"] == first["id"]  # type: ignore[arg-type]


# -- Airflow before 3.3: name, size and purpose since the DAG run started ---------------------------


def test_without_state_store_the_window_starts_at_the_run_start(
    openai_files_connection: Any, text_file: Path, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    now = datetime.now(timezone.utc)
    first = run(text_file, context(1, None, run_start=now - timedelta(minutes=1)))
    with caplog.at_level(logging.INFO):
        reused = run(text_file, context(2, None, run_start=now - timedelta(minutes=1)))
    assert reused["id"] == first["id"]
    assert "could not be compared" in log_text(caplog, capsys)
    # A file from before this run started (e.g. a run long ago) is never taken.
    with caplog.at_level(logging.INFO):
        fresh = run(text_file, context(2, None, run_start=now + timedelta(hours=1)))
    assert fresh["id"] != first["id"]
    assert "no uploaded file of an earlier try to reuse" in log_text(caplog, capsys)


def test_without_state_store_or_run_start_nothing_is_reused(openai_files_connection: Any, text_file: Path) -> None:
    first = run(text_file, context(1, None))
    second = run(text_file, context(2, None))
    assert second["id"] != first["id"]


# -- Uploads API: a retry sends only the missing parts -----------------------------------------------

PART = 1 * MiB


def parts_posted(emu: Any) -> int:
    """Parts the service stored (a part cut off by the crash may show up as a failed request)."""
    return sum(1 for _method, path, status in emu.request_log() if path.endswith("/parts") and status == 200)


def crash_at_part(monkeypatch: pytest.MonkeyPatch, crash_index: int) -> None:
    """The worker dies while sending part ``crash_index`` (the parts after it may already be sent)."""
    real = _uploads.MultipartUpload._post_part

    def post_part(self: Any, index: int, body: Any) -> str:
        if index == crash_index:
            raise RuntimeError("worker lost")  # not retried by the hook: the try ends here
        return real(self, index, body)

    monkeypatch.setattr(_uploads.MultipartUpload, "_post_part", post_part)


def multipart_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    original = OpenAIFilesHook.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.update(multipart_threshold=2 * MiB, part_size=PART, max_concurrency=1)
        original(self, *args, **kwargs)
        self.retry_policy.sleep = lambda _s: None

    monkeypatch.setattr(OpenAIFilesHook, "__init__", init)


@pytest.mark.parametrize("change_a_sent_part", [False, True])
def test_retry_resumes_the_upload_sending_only_missing_parts(
    openai_files_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change_a_sent_part: bool
) -> None:
    emu, store = openai_files_connection, FakeStateStore()
    source = tmp_path / "corpus.bin"
    source.write_bytes(os.urandom(4 * PART + 1234))  # 5 parts
    multipart_hook(monkeypatch)
    with monkeypatch.context() as patch:
        crash_at_part(patch, 3)
        with pytest.raises(Exception, match="worker lost"):
            run(source, context(1, store))
    sent_by_try_1 = parts_posted(emu)
    [journal] = [value for key, value in store.values.items() if key.endswith("multipart")]
    recorded = set(journal["parts"])  # part indexes the try recorded as stored
    assert 1 <= sent_by_try_1 < 5 and len(recorded) == sent_by_try_1 and "3" not in recorded
    assert emu.files() == []
    [upload] = emu.uploads()
    assert upload["status"] == "pending"  # left open for the retry
    if change_a_sent_part:
        data = bytearray(source.read_bytes())
        data[PART + 10] ^= 0xFF  # inside part 2, already sent
        source.write_bytes(bytes(data))

    created = run(source, context(2, store))

    # Every part was stored once, plus the changed one again if try 1 had sent it: nothing else twice.
    assert parts_posted(emu) == 5 + (1 if change_a_sent_part and "1" in recorded else 0)
    assert [u["id"] for u in emu.uploads()] == [upload["id"]]
    assert emu.content(created["id"]) == source.read_bytes()  # and /complete checked the md5
    assert not any(key.endswith("multipart") for key in store.values)


def test_expired_upload_is_not_resumed(
    openai_files_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, store = openai_files_connection, FakeStateStore()
    source = tmp_path / "corpus.bin"
    source.write_bytes(os.urandom(3 * PART))
    multipart_hook(monkeypatch)
    with monkeypatch.context() as patch:
        crash_at_part(patch, 2)
        with pytest.raises(Exception, match="worker lost"):
            run(source, context(1, store))
    emu.advance_clock(3700)  # the Upload expired on the service
    created = run(source, context(2, store))
    assert emu.content(created["id"]) == source.read_bytes()
    assert len(emu.uploads()) == 2


def test_a_killed_upload_from_an_object_store_is_cancelled_by_the_next_try(
    openai_files_connection: Any, memory_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote source is not resumed part by part, but the Upload a killed try left is never left pending."""
    from airflow_openai_files.transfer import journal as _part_journal

    emu, store = openai_files_connection, FakeStateStore()
    body = os.urandom(4 * PART + 99)
    with memory_fs.open("/staging/corpus.bin", "wb") as handle:
        handle.write(body)
    source = "memory://staging/corpus.bin"
    multipart_hook(monkeypatch)
    with monkeypatch.context() as patch:
        crash_at_part(patch, 2)
        # SIGKILL: nothing of the try runs after the crash, so it cannot cancel its own Upload.
        patch.setattr(_part_journal.RecordedRemoteUpload, "_failed", lambda self, err: None)
        with pytest.raises(Exception, match="worker lost"):
            run(source, context(1, store))  # type: ignore[arg-type]
    [left] = emu.uploads()
    assert left["status"] == "pending"

    created = run(source, context(2, store))  # type: ignore[arg-type]

    statuses = {upload["id"]: upload["status"] for upload in emu.uploads()}
    assert statuses.pop(left["id"]) == "cancelled"
    assert list(statuses.values()) == ["completed"]
    assert emu.content(created["id"]) == body
    assert not any(key.endswith("multipart") for key in store.values)
