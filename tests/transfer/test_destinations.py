"""Download destinations after a killed try (issue 16).

Local: the temporary name comes from the task (dag, run, task, map index), so the next try removes
what a killed try left. Object stores: the final key is written directly (an S3 multipart upload is
visible only once completed), aborted on any failure, and a killed try's incomplete multipart upload
of exactly that key is aborted by the next try. Against a real S3-compatible server (moto).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.resume import task_key
from airflow_openai_files.transfer.destinations import Destination
from tests.support.s3 import BUCKET

_TASK_KEY = task_key({"ti": type("TI", (), {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1})()})
assert _TASK_KEY is not None
KEY: str = _TASK_KEY
MIB = 1024 * 1024


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_local_temp_name_is_derived_from_the_task_and_stable(tmp_path: Path) -> None:
    first = Destination(tmp_path / "out.bin", overwrite=False, temp_key=KEY)
    again = Destination(tmp_path / "out.bin", overwrite=False, temp_key=KEY)
    other = Destination(tmp_path / "out.bin", overwrite=False, temp_key="f" * 32)
    assert first.local_temp == again.local_temp == tmp_path / f".out.bin.{KEY[:16]}.part"
    assert other.local_temp != first.local_temp
    assert Destination(tmp_path / "out.bin", overwrite=False).local_temp is None


def test_next_try_removes_what_a_killed_try_left(tmp_path: Path) -> None:
    target = Destination(tmp_path / "out.bin", overwrite=False, temp_key=KEY)
    stale = target.local_temp
    assert stale is not None
    stale.write_bytes(b"x" * 4096)  # what a kill -9 of the previous try left
    target.check()
    with target.open_temp() as handle:
        assert os.stat(stale).st_size == 0  # a fresh file under the same name, not the stale one
        assert oct(os.stat(stale).st_mode & 0o777) == "0o600"
        handle.write(b"complete")
    target.commit()
    assert (tmp_path / "out.bin").read_bytes() == b"complete"
    assert _parts(tmp_path) == []


def test_failed_local_attempt_leaves_nothing(tmp_path: Path) -> None:
    for key in (KEY, None):
        target = Destination(tmp_path / "out.bin", overwrite=False, temp_key=key)
        with pytest.raises(RuntimeError), target.open_temp() as handle:
            handle.write(b"partial")
            raise RuntimeError("connection reset")
        target.discard()
        assert list(tmp_path.iterdir()) == []


def test_hook_download_with_task_key_cleans_a_stale_part(openai_files_connection: Any, tmp_path: Path) -> None:
    hook = OpenAIFilesHook()
    body = os.urandom(3 * MIB + 5)
    created = hook.upload_file(_write(tmp_path / "src.png", body), "vision")
    out = tmp_path / "dl"
    out.mkdir()
    stale = out / f".copy.bin.{KEY[:16]}.part"
    stale.write_bytes(b"left by a killed try")
    hook.download_file(created["id"], out / "copy.bin", temp_key=KEY)
    assert (out / "copy.bin").read_bytes() == body
    assert _parts(out) == []


def _write(path: Path, body: bytes) -> Path:
    path.write_bytes(body)
    return path


# --- S3 (moto server: tests/support/s3.py) ---------------------------------------------------------------------------


def _keys(s3: Any) -> list[str]:
    """Object keys (relative to the test's prefix)."""
    listed: list[str] = s3.keys()
    return listed


def _pending(s3: Any) -> list[str]:
    """Keys (relative to the test's prefix) with an incomplete multipart upload."""
    listing = s3.server.client.list_multipart_uploads(Bucket=BUCKET, Prefix=s3.prefix + "/")
    return sorted(item["Key"][len(s3.prefix) + 1 :] for item in listing.get("Uploads", []))


def test_s3_download_writes_the_final_key_directly(s3: Any) -> None:
    target = Destination(s3.url("direct/out.bin"), overwrite=False, temp_key=KEY)
    target.check()
    body = os.urandom(12 * MIB)  # above s3fs's block size: a multipart upload
    with target.open_temp() as handle:
        for start in range(0, len(body), MIB):
            handle.write(body[start : start + MIB])
        assert "direct/out.bin" not in _keys(s3)  # invisible until completed
    target.commit()
    assert s3.get("direct/out.bin") == body
    assert [key for key in _keys(s3) if key.endswith(".part")] == []
    assert _pending(s3) == []
    with pytest.raises(OpenAIFilesValidationError, match="already exists"):
        Destination(s3.url("direct/out.bin"), overwrite=False).check()


@pytest.mark.parametrize("size", [MIB, 12 * MIB], ids=["single-part", "multipart"])
def test_s3_failed_attempt_is_aborted_not_completed(s3: Any, size: int) -> None:
    key = f"abort/{size}.bin"
    target = Destination(s3.url(key), overwrite=True, temp_key=KEY)
    with pytest.raises(ConnectionError), target.open_temp() as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
        raise ConnectionError("body cut short")
    target.discard()
    assert key not in _keys(s3)
    assert key not in _pending(s3)


def test_s3_failed_overwrite_keeps_the_old_object(s3: Any) -> None:
    s3.put("keep/out.bin", b"old")
    target = Destination(s3.url("keep/out.bin"), overwrite=True)
    with pytest.raises(ConnectionError), target.open_temp() as handle:
        handle.write(os.urandom(7 * MIB))
        raise ConnectionError("body cut short")
    assert s3.get("keep/out.bin") == b"old"
    assert "keep/out.bin" not in _pending(s3)


def test_s3_next_try_aborts_the_killed_tries_multipart_upload(s3: Any) -> None:
    # What a kill -9 mid-download leaves: an incomplete multipart upload of the destination key.
    for key in ("stale/out.bin", "stale/out.bin.other"):
        client = s3.server.client
        upload = client.create_multipart_upload(Bucket=BUCKET, Key=s3.key(key))
        client.upload_part(
            Bucket=BUCKET, Key=s3.key(key), UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 5 * MIB
        )
    assert _pending(s3) == ["stale/out.bin", "stale/out.bin.other"]
    target = Destination(s3.url("stale/out.bin"), overwrite=False, temp_key=KEY)
    target.check()
    with target.open_temp() as handle:
        handle.write(b"complete")
    target.commit()
    assert s3.get("stale/out.bin") == b"complete"
    assert _pending(s3) == ["stale/out.bin.other"]  # exactly that key: another key's upload is not ours
    listing = s3.server.client.list_multipart_uploads(Bucket=BUCKET, Prefix=s3.prefix + "/")
    for item in listing.get("Uploads", []):
        s3.server.client.abort_multipart_upload(Bucket=BUCKET, Key=item["Key"], UploadId=item["UploadId"])


def test_hook_downloads_to_s3_without_temporary_objects(s3: Any, openai_files_connection: Any, tmp_path: Path) -> None:
    hook = OpenAIFilesHook()
    body = os.urandom(9 * MIB + 17)
    created = hook.upload_file(_write(tmp_path / "src.png", body), "vision")
    shown = hook.download_file(created["id"], s3.url("hook/copy.bin"), temp_key=KEY)
    assert shown == s3.url("hook/copy.bin")
    assert s3.get("hook/copy.bin") == body
    assert _keys(s3) == ["hook/copy.bin"]
    assert _pending(s3) == []
