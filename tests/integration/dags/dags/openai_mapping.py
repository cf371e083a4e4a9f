"""The mapping and XCom patterns of docs/operators.md, run by tests/integration/dags/test_mapping.py under dag.test().

Three files are uploaded by a mapped task; each downstream task takes the uploads' output the way a
user writes it: whole File dicts (``.expand(file_id=uploads.output)``), ids picked with ``.map()``,
a Jinja-rendered File dict, and the lazy sequence of all of them for one delete.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_openai_files.operators import OpenAIDeleteFileOperator, OpenAIUploadFileOperator
from airflow_openai_files.sensors import OpenAIFileSensor

STAGING = Path(os.environ.get("OPENAI_FILES_STAGING", "/tmp/openai-mapping").removeprefix("file://"))
WAIT = {"poke_interval": 0.2, "timeout": 60, "target_status": "processed"}

with DAG("openai_mapping", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:

    @task
    def write_files() -> list[str]:
        STAGING.mkdir(parents=True, exist_ok=True)
        paths = []
        for n in range(3):
            path = STAGING / f"notes_{n}.txt"
            path.write_text(f"note number {n}\n")
            paths.append(str(path))
        return paths

    uploads = OpenAIUploadFileOperator.partial(task_id="upload", purpose="user_data").expand(file_path=write_files())

    # 1. Map over the whole File dicts.
    wait_dicts = OpenAIFileSensor.partial(task_id="wait_dicts", **WAIT).expand(file_id=uploads.output)
    # 2. Map over ids picked out with .map().
    wait_ids = OpenAIFileSensor.partial(task_id="wait_ids", **WAIT).expand(
        file_id=uploads.output.map(lambda f: f["id"])
    )
    # 3. A Jinja-rendered File dict: "{'id': 'file-...', ...}".
    one = OpenAIUploadFileOperator(task_id="upload_one", file_path=str(STAGING / "one.txt"), purpose="user_data")
    wait_rendered = OpenAIFileSensor(
        task_id="wait_rendered", file_id="{{ ti.xcom_pull(task_ids='upload_one') }}", **WAIT
    )
    # 4. Delete every upload of the mapped task at once: a lazy sequence of File dicts.
    delete_all = OpenAIDeleteFileOperator(task_id="delete_all", file_id=uploads.output)

    @task
    def write_one() -> None:
        STAGING.mkdir(parents=True, exist_ok=True)
        (STAGING / "one.txt").write_text("a single note\n")

    write_one() >> one >> wait_rendered
    [wait_dicts, wait_ids] >> delete_all
