"""The four operators against the in-process emulator (``openai_files_connection`` fixture)."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException

from airflow_openai_files import operators
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.operators import (
    OpenAIDeleteFileOperator,
    OpenAIDownloadFileOperator,
    OpenAIFilesCleanupOperator,
    OpenAIUploadFileOperator,
    parse_duration,
)
from tests.support.emulators import FILE_STATUS_ERRORS
from tests.support.task_helpers import batch_lines, fine_tune_lines, make_context


def upload(source: Any, purpose: str = "fine-tune", context: dict[str, Any] | None = None, **kwargs: Any) -> dict:
    op = OpenAIUploadFileOperator(task_id="upload", file_path=source, purpose=purpose, **kwargs)
    return op.execute(context or make_context())


def assert_plain_json(value: Any) -> None:
    assert json.loads(json.dumps(value)) == value


# -- upload ---------------------------------------------------------------------------------------------


def test_upload_local_path_returns_file_dict(openai_files_connection: Any, fine_tune_file: Path) -> None:
    result = upload(str(fine_tune_file))
    assert result["id"].startswith("file-")
    assert result["filename"] == "train.jsonl"
    assert result["purpose"] == "fine-tune"
    assert result["bytes"] == fine_tune_file.stat().st_size
    assert_plain_json(result)
    assert openai_files_connection.content(result["id"]) == fine_tune_file.read_bytes()


def test_upload_file_object(openai_files_connection: Any) -> None:
    body = batch_lines(5)
    result = upload(io.BytesIO(body), purpose="batch", filename="requests.jsonl")
    assert result["filename"] == "requests.jsonl"
    assert openai_files_connection.content(result["id"]) == body
    assert_plain_json(result)


def test_upload_file_url_and_object_storage_paths(
    openai_files_connection: Any, fine_tune_file: Path, memory_fs: Any
) -> None:
    from_url = upload(f"file://{fine_tune_file}")
    from_path = upload(ObjectStoragePath(f"file://{fine_tune_file}"), filename="renamed.jsonl")
    memory_source = ObjectStoragePath("memory://staging/day.jsonl")
    memory_source.write_bytes(fine_tune_lines(11))
    from_memory = upload(memory_source)
    from_memory_string = upload("memory://staging/day.jsonl", filename="again.jsonl")
    assert from_url["filename"] == "train.jsonl"
    assert from_path["filename"] == "renamed.jsonl"
    assert from_memory["filename"] == "day.jsonl"
    assert from_memory_string["filename"] == "again.jsonl"
    assert openai_files_connection.content(from_memory["id"]) == fine_tune_lines(11)
    assert openai_files_connection.content(from_path["id"]) == fine_tune_file.read_bytes()


def test_upload_validation_refuses_before_any_request(openai_files_connection: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(fine_tune_lines(3) + b"{not json}\n" + fine_tune_lines(8))
    with pytest.raises(OpenAIFilesValidationError, match=r"bad\.jsonl.*line 4"):
        upload(bad)
    not_jsonl = tmp_path / "train.csv"
    not_jsonl.write_bytes(b"a,b\n")
    with pytest.raises(OpenAIFilesValidationError, match=r"\.jsonl"):
        upload(not_jsonl)
    assert openai_files_connection.request_log() == []


@FILE_STATUS_ERRORS
def test_upload_without_validation_lets_the_server_judge(openai_files_connection: Any, tmp_path: Path) -> None:
    """Against a target that reports content problems on the file (Azure OpenAI; the emulator's
    ``file_validation="status"``), an unchecked upload shows the server's verdict."""
    bad = tmp_path / "short.jsonl"
    bad.write_bytes(fine_tune_lines(2))
    result = upload(bad, validate=False)
    assert result["status"] == "error"
    assert "at least 10" in result["status_details"]


def test_upload_without_validation_is_accepted_where_the_job_judges(
    openai_files_connection: Any, tmp_path: Path
) -> None:
    """OpenAI reports a bad training file on the fine-tuning job, not on the file (the emulator's default)."""
    bad = tmp_path / "short.jsonl"
    bad.write_bytes(fine_tune_lines(2))
    result = upload(bad, validate=False)
    assert result["status"] == "processed"
    assert openai_files_connection.content(result["id"]) == bad.read_bytes()


def test_upload_retry_try_reuses_file_of_crashed_try(openai_files_connection: Any, fine_tune_file: Path) -> None:
    run_start = datetime.now(timezone.utc) - timedelta(minutes=1)
    first = upload(fine_tune_file, context=make_context(try_number=1, run_start=run_start))
    second = upload(fine_tune_file, context=make_context(try_number=2, run_start=run_start))
    assert second["id"] == first["id"]
    assert len(openai_files_connection.files()) == 1
    # A first try never looks for earlier uploads: running the task again on purpose uploads again.
    third = upload(fine_tune_file, context=make_context(try_number=1, run_start=run_start))
    assert third["id"] != first["id"]


def test_upload_expiry_from_template_string(openai_files_connection: Any, fine_tune_file: Path) -> None:
    op = OpenAIUploadFileOperator(
        task_id="upload",
        file_path=str(fine_tune_file),
        purpose="{{ params.purpose }}",
        expires_after_seconds="{{ params.ttl }}",
    )
    context = make_context(params={"purpose": "fine-tune", "ttl": 7200})
    op.render_template_fields(context)
    result = op.execute(context)
    assert result["expires_at"] == result["created_at"] + 7200


def test_upload_logs_id_size_and_throughput_not_the_key(
    openai_files_connection: Any,
    fine_tune_file: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with caplog.at_level(logging.INFO):
        result = upload(fine_tune_file)
    text = caplog.text + capsys.readouterr().out  # Airflow's structlog setup may write to stdout
    assert result["id"] in text
    assert re.search(r"\d (bytes|KiB|MiB|GiB)/s", text)
    assert f"{result['bytes']} bytes" in text and " 0.0 MiB" not in text
    assert openai_files_connection.api_key not in text


def test_upload_on_kill_cancels_active_uploads(openai_files_connection: Any) -> None:
    op = OpenAIUploadFileOperator(task_id="upload", file_path="/nonexistent", purpose="user_data")
    op.on_kill()  # no hook yet: nothing to cancel, and no connection lookup

    class Pending:
        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    pending = Pending()
    op.hook._upload_registry.add(pending)  # type: ignore[arg-type]
    op.on_kill()
    assert pending.cancelled


# -- download -------------------------------------------------------------------------------------------


def test_download_to_local_path_and_object_storage(
    openai_files_connection: Any, batch_file: Path, tmp_path: Path, memory_fs: Any
) -> None:
    created = upload(batch_file, purpose="batch")
    local = tmp_path / "out" / "copy.jsonl"
    local.parent.mkdir()
    result = OpenAIDownloadFileOperator(task_id="d1", file_id=created["id"], destination=str(local)).execute(
        make_context()
    )
    assert result == str(local)
    assert local.read_bytes() == batch_file.read_bytes()

    result = OpenAIDownloadFileOperator(
        task_id="d2", file_id=created, destination=ObjectStoragePath("memory://downloads/copy.jsonl")
    ).execute(make_context())
    assert isinstance(result, str) and result.startswith("memory://")
    assert ObjectStoragePath("memory://downloads/copy.jsonl").read_bytes() == batch_file.read_bytes()

    result = OpenAIDownloadFileOperator(
        task_id="d3", file_id=created["id"], destination=f"file://{tmp_path}/url.jsonl"
    ).execute(make_context())
    assert (tmp_path / "url.jsonl").read_bytes() == batch_file.read_bytes()
    assert_plain_json(result)


def test_download_refuses_to_overwrite_unless_asked(
    openai_files_connection: Any, batch_file: Path, tmp_path: Path
) -> None:
    created = upload(batch_file, purpose="batch")
    target = tmp_path / "exists.jsonl"
    target.write_bytes(b"old")
    op = OpenAIDownloadFileOperator(task_id="d", file_id=created["id"], destination=target)
    with pytest.raises(OpenAIFilesValidationError, match="already exists"):
        op.execute(make_context())
    assert target.read_bytes() == b"old"
    OpenAIDownloadFileOperator(task_id="d", file_id=created["id"], destination=target, overwrite=True).execute(
        make_context()
    )
    assert target.read_bytes() == batch_file.read_bytes()


def test_download_templated(openai_files_connection: Any, batch_file: Path, tmp_path: Path) -> None:
    created = upload(batch_file, purpose="batch")
    op = OpenAIDownloadFileOperator(
        task_id="d",
        file_id="{{ params.file_id }}",
        destination=str(tmp_path) + "/{{ ds_nodash }}.jsonl",
        openai_conn_id="{{ params.conn }}",
    )
    context = make_context(params={"file_id": created["id"], "conn": "openai_files_default"})
    op.render_template_fields(context)
    assert op.destination == f"{tmp_path}/20240517.jsonl"
    assert op.execute(context) == f"{tmp_path}/20240517.jsonl"


# -- delete ---------------------------------------------------------------------------------------------


def test_delete_one_and_many(openai_files_connection: Any, fine_tune_file: Path) -> None:
    a, b, c = (upload(fine_tune_file)["id"] for _ in range(3))
    assert OpenAIDeleteFileOperator(task_id="d", file_id=a).execute(make_context()) == [a]
    deleted = OpenAIDeleteFileOperator(task_id="d", file_id=[b, a, c, b]).execute(make_context())
    assert deleted == [b, c]  # a was already gone (missing_ok), b listed twice
    assert_plain_json(deleted)
    assert openai_files_connection.files() == []


def test_delete_missing_fails_when_not_missing_ok(openai_files_connection: Any) -> None:
    op = OpenAIDeleteFileOperator(task_id="d", file_id="file-doesnotexist", missing_ok=False)
    with pytest.raises(OpenAIFilesError) as info:
        op.execute(make_context())
    assert info.value.http_status == 404


def test_delete_templated_list(openai_files_connection: Any, fine_tune_file: Path) -> None:
    ids = [upload(fine_tune_file)["id"] for _ in range(2)]
    op = OpenAIDeleteFileOperator(task_id="d", file_id="{{ params.ids }}")
    context = make_context(params={"ids": ids})
    op.render_template_fields(context)
    assert op.file_id == str(ids)  # non-native rendering gives the list's repr
    assert op.execute(context) == ids


@pytest.mark.parametrize("bad", ["", ["file-a", ""], 42])
def test_delete_rejects_bad_ids(bad: Any) -> None:
    with pytest.raises(AirflowException, match="Invalid file id"):
        OpenAIDeleteFileOperator(task_id="d", file_id=bad).execute(make_context())


# -- cleanup --------------------------------------------------------------------------------------------


def test_cleanup_refuses_without_filter() -> None:
    with pytest.raises(ValueError, match="at least one of"):
        OpenAIFilesCleanupOperator(task_id="c")
    op = OpenAIFilesCleanupOperator(task_id="c", purpose="{{ params.p }}")
    op.render_template_fields(make_context(params={"p": ""}))
    with pytest.raises(AirflowException, match="refusing"):
        op.execute(make_context())


def test_cleanup_filters_purpose_glob_and_age(
    openai_files_connection: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def put(name: str, purpose: str, body: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(body)
        return upload(path, purpose=purpose)["id"]

    old_train = put("support_2024-05-01.jsonl", "fine-tune", fine_tune_lines())
    old_other = put("other_2024-05-01.jsonl", "fine-tune", fine_tune_lines(10, "x"))
    old_batch = put("support_batch.jsonl", "batch", batch_lines())
    openai_files_connection.advance_clock(8 * 86400)  # files created from now on are 8 days younger
    new_train = put("support_2024-05-09.jsonl", "fine-tune", fine_tune_lines(10, "y"))
    now = operators.files._now()
    monkeypatch.setattr(operators.files, "_now", lambda: now + 8 * 86400)

    dry = OpenAIFilesCleanupOperator(
        task_id="c", purpose="fine-tune", filename_glob="support_*.jsonl", older_than="7d", dry_run=True
    ).execute(make_context())
    assert dry == [old_train]
    assert len(openai_files_connection.files()) == 4

    op = OpenAIFilesCleanupOperator(
        task_id="c",
        purpose="{{ params.purpose }}",
        filename_glob="{{ params.glob }}",
        older_than="{{ params.keep }}",
    )
    context = make_context(params={"purpose": "fine-tune", "glob": "support_*", "keep": "7d"})
    op.render_template_fields(context)
    deleted = op.execute(context)
    assert deleted == [old_train]
    assert_plain_json(deleted)
    remaining = {f["id"] for f in openai_files_connection.files()}
    assert remaining == {old_other, old_batch, new_train}

    by_age = OpenAIFilesCleanupOperator(task_id="c", older_than=timedelta(days=7)).execute(make_context())
    assert sorted(by_age) == sorted([old_other, old_batch])
    assert {f["id"] for f in openai_files_connection.files()} == {new_train}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7d", 7 * 86400),
        ("12h", 43200),
        ("1d12h", 129600),
        ("90m", 5400),
        ("2w", 14 * 86400),
        ("3600", 3600),
        (" 1.5 h ", 5400),
        (120, 120),
        (timedelta(hours=1), 3600),
    ],
)
def test_parse_duration(value: Any, seconds: float) -> None:
    parsed = parse_duration(value)
    assert parsed is not None and parsed.total_seconds() == seconds


@pytest.mark.parametrize("value", ["7 days", "d", "7x", "-5", [1]])
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_duration_empty_means_no_filter() -> None:
    assert parse_duration(None) is None
    assert parse_duration("  ") is None


# -- shape ----------------------------------------------------------------------------------------------


def test_template_fields_and_no_template_ext() -> None:
    assert set(OpenAIUploadFileOperator.template_fields) >= {"file_path", "purpose", "filename", "openai_conn_id"}
    assert set(OpenAIDownloadFileOperator.template_fields) >= {"file_id", "destination", "openai_conn_id"}
    assert set(OpenAIDeleteFileOperator.template_fields) >= {"file_id", "openai_conn_id"}
    assert set(OpenAIFilesCleanupOperator.template_fields) >= {
        "purpose",
        "filename_glob",
        "older_than",
        "openai_conn_id",
    }
    for cls in (OpenAIUploadFileOperator, OpenAIDownloadFileOperator, OpenAIDeleteFileOperator):
        assert not any(ext.endswith("jsonl") for ext in cls.template_ext)


def test_jsonl_path_is_not_replaced_by_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(fine_tune_lines())
    op = OpenAIUploadFileOperator(task_id="u", file_path=str(path), purpose="fine-tune")
    op.render_template_fields(make_context())
    assert op.file_path == str(path)


def test_modules_import_without_the_hook() -> None:
    code = (
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import airflow_openai_files.operators, airflow_openai_files.sensors\n"
        "new = sorted(m for m in set(sys.modules) - before if not m.startswith('airflow_openai_files.'))\n"
        "ours = sorted(m for m in sys.modules if m.startswith('airflow_openai_files.'))\n"
        "print('RESULT', ','.join(new), ';', ','.join(ours))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = next(row for row in out.splitlines() if row.startswith("RESULT"))
    new, ours = line[len("RESULT ") :].split(" ; ")
    assert "airflow_openai_files.hooks" not in ours and "airflow_openai_files.triggers" not in ours
    assert "requests_toolbelt" not in new and "httpx" not in new


def test_upload_rejects_a_non_numeric_expiry(fine_tune_file: Path) -> None:
    # A literal is refused when the DAG is parsed (issue 12); a rendered one when the task starts.
    with pytest.raises(AirflowException, match="whole number"):
        OpenAIUploadFileOperator(
            task_id="u", file_path=str(fine_tune_file), purpose="fine-tune", expires_after_seconds="soon"
        )
    op = OpenAIUploadFileOperator(
        task_id="u", file_path=str(fine_tune_file), purpose="fine-tune", expires_after_seconds="{{ params.e }}"
    )
    context = make_context(params={"e": "soon"})
    op.render_template_fields(context)
    with pytest.raises(AirflowException, match="whole number"):
        op.execute(context)
