"""
### Review sentiment with the Batch API, end to end

Each day:

1. **build_requests**: one `POST /v1/chat/completions` request per review of
   `data/product_reviews.csv` (shipped next to this file), each with `custom_id` = the review id,
   written to the staging location.
2. **run_batch** (`OpenAIBatchOperator`, deferrable): checks the JSONL (unique `custom_id`, one
   model, the endpoint on every line, no streaming, at most 50,000 requests and 200 MB) before any
   request, uploads it with purpose `batch`, creates the batch and waits for it in the triggerer,
   then lands the output and error files (whichever exist) next to the requests. A retry of this
   task resumes the same batch; it never pays for a second one.
3. **join_results**: joins every request to its result by `custom_id`
   (`airflow_openai_files.results.join_by_custom_id`, streamed) and reports the counts.

Runs unchanged against the real API or the local emulator: only the `openai_files_default`
connection differs. Staging goes to `$OPENAI_FILES_STAGING` (any ObjectStoragePath URL, e.g.
`s3://aws_default@bucket/openai`); unset, to the local temp dir only under the Local or Sequential
executor or `airflow dags test`, and under any other executor the run refuses to start
(`staging_root()` of `airflow_openai_files.transfer.staging`, so this file works in any DAGs subfolder).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, get_current_context, task

from airflow_openai_files.operators import OpenAIBatchOperator
from airflow_openai_files.transfer.staging import staging_root

REVIEWS = Path(__file__).parent / "data" / "product_reviews.csv"
MODEL = "gpt-4o-mini"
ENDPOINT = "/v1/chat/completions"
INSTRUCTIONS = "Classify the sentiment of this product review as positive, neutral or negative. Answer with one word."


@dag(
    dag_id="openai_batch_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["openai", "batch"],
    doc_md=__doc__,
)
def openai_batch_pipeline() -> None:
    @task
    def build_requests() -> dict[str, Any]:
        ds = get_current_context()["ds"]
        folder = staging_root() / "batch_pipeline" / ds
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "requests.jsonl"
        with REVIEWS.open(encoding="utf-8", newline="") as handle:
            reviews = list(csv.DictReader(handle))
        with target.open("wb") as out:
            for review in reviews:
                request = {
                    "custom_id": review["review_id"],
                    "method": "POST",
                    "url": ENDPOINT,
                    "body": {
                        "model": MODEL,
                        "max_tokens": 3,
                        "messages": [
                            {"role": "system", "content": INSTRUCTIONS},
                            {"role": "user", "content": review["review_text"]},
                        ],
                    },
                }
                out.write(json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n")
        print(f"Wrote {len(reviews)} requests to {target}")
        return {
            "requests_path": str(target),
            "output_path": str(folder / "output.jsonl"),
            "error_path": str(folder / "errors.jsonl"),
            "requests": len(reviews),
        }

    built = build_requests()

    batch = OpenAIBatchOperator(
        task_id="run_batch",
        input_file=built["requests_path"],
        endpoint=ENDPOINT,
        metadata={"pipeline": "openai_batch_pipeline", "ds": "{{ ds }}"},
        output_destination=built["output_path"],
        error_destination=built["error_path"],
        overwrite=True,
        max_failed_requests=0.1,  # up to 10% of the reviews may fail without failing the day
        deferrable=True,
        poll_interval=5,
    )

    @task
    def join_results(build: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        from airflow_openai_files.results import is_success, join_by_custom_id

        counts = {"joined": 0, "succeeded": 0, "failed": 0, "missing": 0, "output_tokens": 0}
        examples: list[str] = []
        for request, result in join_by_custom_id(build["requests_path"], summary["output_path"], summary["error_path"]):
            counts["joined"] += 1
            if result is None:
                counts["missing"] += 1  # no line in either file (cannot happen for a completed batch)
            elif is_success(result):
                counts["succeeded"] += 1
                body = result["response"]["body"]
                counts["output_tokens"] += int((body.get("usage") or {}).get("completion_tokens") or 0)
                if len(examples) < 3:
                    answer = body["choices"][0]["message"]["content"]
                    examples.append(f"{request['custom_id']}: {answer!r}")
            else:
                counts["failed"] += 1
        report = {"batch_id": summary["batch_id"], "status": summary["status"], **counts}
        print(
            f"Batch {summary['batch_id']} {summary['status']}: {counts['succeeded']} of {counts['joined']} reviews "
            f"answered, {counts['failed']} failed, {counts['missing']} without a result line; "
            f"{counts['output_tokens']} output tokens"
        )
        for line in examples:
            print(f"  {line}")
        return report

    built >> batch
    join_results(built, batch.output)


batch_pipeline_dag = openai_batch_pipeline()

if __name__ == "__main__":
    batch_pipeline_dag.test()
