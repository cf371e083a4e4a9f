"""
### Large transfers for the crash tests

`build` writes `params.mib` MiB to `$OPENAI_FILES_STAGING`; `upload` sends it (purpose `vision`: the
service serves the content of `vision` files back, not of `user_data` ones) through the
`openai_files_gated` connection (the Uploads API above 32 MiB; the test's gate proxy can freeze
the transfer half-way); `download_s3` fetches it back to the staging bucket, `download_local` to a
local disk of worker A (pinned by queue: a local path only exists on one machine), and `verify`
compares sizes. Short retry delays: the test kills tries on purpose.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import ObjectStoragePath, dag, get_current_context, task

from airflow_openai_files.operators import OpenAIDownloadFileOperator, OpenAIUploadFileOperator

CONN = "openai_files_gated"


@dag(
    dag_id="openai_crash_transfer",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 3, "retry_delay": pendulum.duration(seconds=2)},
    params={"mib": 160},
    tags=["openai", "test"],
    doc_md=__doc__,
)
def openai_crash_transfer() -> None:
    @task
    def build() -> dict[str, Any]:
        context = get_current_context()
        stamp = "".join(ch if ch.isalnum() else "_" for ch in context["run_id"])
        folder = ObjectStoragePath(os.environ["OPENAI_FILES_STAGING"]) / "crash" / stamp
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / f"big_{stamp}.png"  # purpose vision: downloadable, image MIME type by name
        block = bytes(range(256)) * 4096  # 1 MiB
        with source.open("wb") as out:
            for _ in range(int(context["params"]["mib"])):
                out.write(block)
        return {"source": str(source), "s3_copy": str(folder / f"copy_{stamp}.bin"), "stamp": stamp}

    @task(queue="worker_a")
    def local_folder(built: dict[str, Any]) -> str:
        folder = Path(tempfile.gettempdir()) / "openai_crash_downloads"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"copy_{built['stamp']}.bin")

    built = build()
    upload = OpenAIUploadFileOperator(
        task_id="upload", file_path=built["source"], purpose="vision", openai_conn_id=CONN
    )
    download_s3 = OpenAIDownloadFileOperator(
        task_id="download_s3",
        file_id=upload.output["id"],
        destination=built["s3_copy"],
        overwrite=True,
        openai_conn_id=CONN,
    )
    local = local_folder(built)
    download_local = OpenAIDownloadFileOperator(
        task_id="download_local",
        file_id=upload.output["id"],
        destination=local,
        overwrite=True,
        openai_conn_id=CONN,
        queue="worker_a",
    )

    @task(queue="worker_a")
    def verify(built: dict[str, Any], s3_copy: str, local_copy: str, uploaded: dict[str, Any]) -> int:
        sizes = {
            "source": ObjectStoragePath(built["source"]).stat()["size"],
            "s3 copy": ObjectStoragePath(s3_copy).stat()["size"],
            "local copy": os.path.getsize(local_copy),
            "uploaded": uploaded["bytes"],
        }
        if len(set(sizes.values())) != 1:
            raise ValueError(f"sizes differ: {sizes}")
        return int(sizes["source"])

    upload >> download_s3 >> local >> download_local
    verify(built, download_s3.output, download_local.output, upload.output)


openai_crash_transfer()
