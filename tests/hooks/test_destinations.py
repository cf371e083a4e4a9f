"""Download destinations after a killed try (issue 16).

Local: the temporary name comes from the task (dag, run, task, map index), so the next try removes
what a killed try left. Object stores: the final key is written directly (an S3 multipart upload is
visible only once completed), aborted on any failure, and a killed try's incomplete multipart upload
of exactly that key is aborted by the next try. Against a real S3-compatible server (moto).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files._io import Destination
from airflow_openai_files._resume import task_key
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.support.s3_server import S3_CONN_ID, moto_s3

KEY = task_key({"ti": type("TI", (), {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1})()})
MIB = 1024 * 1024


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_local_temp_name_is_derived_from_the_task_and_stable(tmp_path: Path) -> None:
    assert KEY is not None
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


# --- S3 (moto server) ---------------------------------------------------------------------------


def _forget_s3_stores() -> None:
    """Drop Airflow's cached filesystems of the test connection: each moto server has its own port."""
    from airflow.sdk.io import store

    for alias in [alias for alias, cached in store._STORE_CACHE.items() if cached.conn_id == S3_CONN_ID]:
        del store._STORE_CACHE[alias]


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    import boto3

    with pytest.MonkeyPatch.context() as monkeypatch, moto_s3(monkeypatch, bucket="dest") as endpoint:
        _forget_s3_stores()
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        yield client
        _forget_s3_stores()


def _keys(client: Any) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket="dest").get("Contents", []))


def _pending(client: Any) -> list[str]:
    return sorted(item["Key"] for item in client.list_multipart_uploads(Bucket="dest").get("Uploads", []))


def _url(key: str) -> str:
    return f"s3://{S3_CONN_ID}@dest/{key}"


def test_s3_download_writes_the_final_key_directly(s3: Any) -> None:
    target = Destination(_url("direct/out.bin"), overwrite=False, temp_key=KEY)
    target.check()
    body = os.urandom(12 * MIB)  # above s3fs's block size: a multipart upload
    with target.open_temp() as handle:
        for start in range(0, len(body), MIB):
            handle.write(body[start : start + MIB])
        assert _keys(s3) == [] or "direct/out.bin" not in _keys(s3)  # invisible until completed
    target.commit()
    assert s3.get_object(Bucket="dest", Key="direct/out.bin")["Body"].read() == body
    assert [key for key in _keys(s3) if key.endswith(".part")] == []
    assert _pending(s3) == []
    with pytest.raises(OpenAIFilesValidationError, match="already exists"):
        Destination(_url("direct/out.bin"), overwrite=False).check()


@pytest.mark.parametrize("size", [MIB, 12 * MIB], ids=["single-part", "multipart"])
def test_s3_failed_attempt_is_aborted_not_completed(s3: Any, size: int) -> None:
    key = f"abort/{size}.bin"
    target = Destination(_url(key), overwrite=True, temp_key=KEY)
    with pytest.raises(ConnectionError), target.open_temp() as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
        raise ConnectionError("body cut short")
    target.discard()
    assert key not in _keys(s3)
    assert key not in _pending(s3)


def test_s3_failed_overwrite_keeps_the_old_object(s3: Any) -> None:
    s3.put_object(Bucket="dest", Key="keep/out.bin", Body=b"old")
    target = Destination(_url("keep/out.bin"), overwrite=True)
    with pytest.raises(ConnectionError), target.open_temp() as handle:
        handle.write(os.urandom(7 * MIB))
        raise ConnectionError("body cut short")
    assert s3.get_object(Bucket="dest", Key="keep/out.bin")["Body"].read() == b"old"
    assert "keep/out.bin" not in _pending(s3)


def test_s3_next_try_aborts_the_killed_tries_multipart_upload(s3: Any) -> None:
    # What a kill -9 mid-download leaves: an incomplete multipart upload of the destination key.
    for key in ("stale/out.bin", "stale/out.bin.other"):
        upload = s3.create_multipart_upload(Bucket="dest", Key=key)
        s3.upload_part(Bucket="dest", Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 5 * MIB)
    assert _pending(s3) == ["stale/out.bin", "stale/out.bin.other"]
    target = Destination(_url("stale/out.bin"), overwrite=False, temp_key=KEY)
    target.check()
    with target.open_temp() as handle:
        handle.write(b"complete")
    target.commit()
    assert s3.get_object(Bucket="dest", Key="stale/out.bin")["Body"].read() == b"complete"
    assert _pending(s3) == ["stale/out.bin.other"]  # exactly that key: another key's upload is not ours
    s3.abort_multipart_upload(
        Bucket="dest",
        Key="stale/out.bin.other",
        UploadId=s3.list_multipart_uploads(Bucket="dest")["Uploads"][0]["UploadId"],
    )


def test_hook_downloads_to_s3_without_temporary_objects(s3: Any, openai_files_connection: Any, tmp_path: Path) -> None:
    hook = OpenAIFilesHook()
    body = os.urandom(9 * MIB + 17)
    created = hook.upload_file(_write(tmp_path / "src.png", body), "vision")
    shown = hook.download_file(created["id"], _url("hook/copy.bin"), temp_key=KEY)
    assert shown == _url("hook/copy.bin")
    assert s3.get_object(Bucket="dest", Key="hook/copy.bin")["Body"].read() == body
    assert [key for key in _keys(s3) if key.startswith("hook/")] == ["hook/copy.bin"]
    assert _pending(s3) == []
