"""
### Fan-out: many staged files uploaded by one mapped task

`build_files` writes `params.count` small JSONL files to `$OPENAI_FILES_STAGING` (shared storage: the
uploads run on whichever worker the executor picks); `upload` is mapped over them, the deferrable
sensor over the uploaded File objects, and `check_uploads` checks that every file was uploaded once.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pendulum
from airflow.sdk import ObjectStoragePath, dag, get_current_context, task

from airflow_openai_files.operators import OpenAIUploadFileOperator
from airflow_openai_files.sensors import OpenAIFileSensor


@dag(
    dag_id="openai_mapped_uploads",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=2)},
    params={"count": 10},
    tags=["openai", "test"],
    doc_md=__doc__,
)
def openai_mapped_uploads() -> None:
    @task
    def build_files() -> list[str]:
        context = get_current_context()
        stamp = "".join(ch if ch.isalnum() else "_" for ch in context["run_id"])
        folder = ObjectStoragePath(os.environ["OPENAI_FILES_STAGING"]) / "fan_out" / stamp
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index in range(int(context["params"]["count"])):
            target = folder / f"notes_{stamp}_{index:03d}.jsonl"
            with target.open("wb") as out:
                for line in range(50):
                    out.write(json.dumps({"file": index, "line": line, "text": "x" * 100}).encode() + b"\n")
            paths.append(str(target))
        return paths

    uploads = OpenAIUploadFileOperator.partial(task_id="upload", purpose="user_data").expand(file_path=build_files())

    waits = OpenAIFileSensor.partial(
        task_id="wait_until_processed", deferrable=True, poke_interval=2, timeout=600
    ).expand(file_id=uploads.output.map(lambda f: f["id"]))

    @task
    def check_uploads(files: Any) -> int:
        ids = [f["id"] for f in files]
        names = [f["filename"] for f in files]
        if len(set(ids)) != len(ids) or len(set(names)) != len(names):
            raise ValueError(f"duplicate uploads: {sorted(names)}")
        return len(ids)

    checked = check_uploads(uploads.output)
    waits >> checked


openai_mapped_uploads()
