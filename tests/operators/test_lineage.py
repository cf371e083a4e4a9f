"""OpenLineage datasets of the file operators and the upload's Asset event (issue 12)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_openai_files._lineage import service_namespace
from airflow_openai_files.operators import (
    OpenAIDeleteFileOperator,
    OpenAIDownloadFileOperator,
    OpenAIFilesCleanupOperator,
    OpenAIUploadFileOperator,
)
from tests.support.task_helpers import batch_lines, make_context

pytest.importorskip("airflow.providers.openlineage")


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def dropped(dataset: Any) -> bool:
    facet = dataset.facets.get("lifecycleStateChange")
    return facet is not None and str(getattr(facet.lifecycleStateChange, "value", "")) == "DROP"


@pytest.fixture
def namespace(openai_files_connection: Any) -> str:
    ns = f"openai://{urlsplit(openai_files_connection.base_url).netloc}"
    assert ns.startswith("openai://127.0.0.1:")
    return ns


def test_namespace_is_the_base_urls_host() -> None:
    assert service_namespace("https://api.openai.com/v1") == "openai://api.openai.com"
    assert service_namespace("https://res.openai.azure.com/openai/v1") == "openai://res.openai.azure.com"


def test_upload_and_download_report_their_datasets(namespace: str, tmp_path: Path) -> None:
    source = tmp_path / "requests.jsonl"
    source.write_bytes(batch_lines(2))
    up = OpenAIUploadFileOperator(task_id="up", file_path=str(source), purpose="batch")
    created = up.execute(make_context())
    lineage = up.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [("file", str(source))]
    assert names(lineage.outputs) == [(namespace, created["id"])]

    target = tmp_path / "back.jsonl"
    down = OpenAIDownloadFileOperator(task_id="down", file_id=created, destination=str(target))
    down.execute(make_context())
    lineage = down.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [(namespace, created["id"])]
    assert names(lineage.outputs) == [("file", str(target))]


def test_object_storage_source_is_named_by_scheme_and_bucket(namespace: str, memory_fs: Any) -> None:
    with memory_fs.open("/bucket/in/requests.jsonl", "wb") as handle:
        handle.write(batch_lines(2))
    up = OpenAIUploadFileOperator(task_id="up", file_path="memory://bucket/in/requests.jsonl", purpose="batch")
    up.execute(make_context())
    [source] = up.get_openlineage_facets_on_complete(None).inputs
    assert source.namespace.startswith("memory://") and source.name.endswith("in/requests.jsonl")


def test_delete_and_cleanup_report_dropped_datasets(namespace: str) -> None:
    from airflow_openai_files.hooks import OpenAIFilesHook

    hook = OpenAIFilesHook()
    a = hook.upload_file(io.BytesIO(b"a"), "user_data", filename="a.txt")
    b = hook.upload_file(io.BytesIO(b"b"), "user_data", filename="b.txt")
    delete = OpenAIDeleteFileOperator(task_id="del", file_id=[a, "file-missing0000"])
    delete.execute(make_context())
    [gone] = delete.get_openlineage_facets_on_complete(None).outputs
    assert (gone.namespace, gone.name) == (namespace, a["id"]) and dropped(gone)

    dry = OpenAIFilesCleanupOperator(task_id="dry", purpose="user_data", dry_run=True)
    dry.execute(make_context())
    assert dry.get_openlineage_facets_on_complete(None).outputs == []
    cleanup = OpenAIFilesCleanupOperator(task_id="clean", purpose="user_data")
    assert cleanup.execute(make_context()) == [b["id"]]
    [gone] = cleanup.get_openlineage_facets_on_complete(None).outputs
    assert (gone.namespace, gone.name) == (namespace, b["id"]) and dropped(gone)


def test_upload_attaches_file_facts_to_its_asset_event(openai_files_connection: Any, tmp_path: Path) -> None:
    import hashlib

    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import OutletEventAccessors

    source = tmp_path / "notes.txt"
    source.write_bytes(b"reference notes\n")
    asset, other = Asset("openai://files/notes"), Asset("s3://elsewhere/x")
    op = OpenAIUploadFileOperator(task_id="up", file_path=str(source), purpose="user_data", outlets=[asset])
    events = OutletEventAccessors()
    created = op.execute(make_context(outlet_events=events))
    assert events[asset].extra == {
        "file_id": created["id"],
        "bytes": 16,
        "sha256": hashlib.sha256(b"reference notes\n").hexdigest(),
        "purpose": "user_data",
    }
    assert events[other].extra == {}


@pytest.mark.slow
def test_example_dag_emits_the_asset_event(openai_files_connection: Any, airflow_home: Path) -> None:
    """The example producer DAG under dag.test(): the Asset event carries the uploaded file's facts."""
    from tests.integration.dags.test_example_dags import DAGS, RUNNER
    from tests.support.airflow_db import airflow_env

    env = airflow_env(airflow_home)
    env["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = openai_files_connection.airflow_connection()
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(DAGS / "openai_uploaded_file_consumer.py"), "publish", "2024-06-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["state"] == "success", report["tasks"]
    [event] = report["asset_events"]
    [file] = openai_files_connection.files()
    assert event["uri"] == "openai://files/reference-notes"
    assert event["extra"]["file_id"] == file["id"] and event["extra"]["bytes"] == file["bytes"]
    assert event["extra"]["purpose"] == "user_data" and len(event["extra"]["sha256"]) == 64


def test_vector_store_sync_lineage(namespace: str, tmp_path: Path) -> None:
    from airflow_openai_files.operators import OpenAIVectorStoreSyncOperator

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("alpha")
    sync = OpenAIVectorStoreSyncOperator(
        task_id="sync", source=str(tmp_path / "docs"), vector_store_name="kb", poll_interval=0.05, timeout=30
    )
    result = sync.execute(make_context())
    lineage = sync.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [("file", str(tmp_path / "docs"))]
    assert names(lineage.outputs) == [(namespace, f"vector_stores/{result['vector_store_id']}")]
