"""
### Keep a support knowledge base in sync with a vector store, then smoke-test it

Each day:

1. **sync_knowledge_base** (`OpenAIVectorStoreSyncOperator`, deferrable): makes the vector store
   `support-knowledge-base` hold exactly the documents of `data/knowledge_base/` (shipped next to this
   file). It plans from the content hashes recorded in the store's file attributes: unchanged documents are
   skipped, edited ones replaced, deleted ones detached and deleted, new ones uploaded and attached through
   file batches; it then waits for indexing in the triggerer and fails if any document failed to index,
   naming it with the service's `last_error`. Each file also carries a `section` attribute (its folder).
2. **smoke_test**: searches the store for a question whose answer lives in one known document, restricted
   by an attribute filter, and fails the run if that document is not the best hit.

Runs unchanged against the real API or the local emulator: only the `openai_files_default` connection
differs. Point `source` at a bucket prefix (`s3://aws_default@bucket/kb`) to sync from object storage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_openai_files.operators import OpenAIVectorStoreSyncOperator
from airflow_openai_files.resources.vector_stores import PATH_ATTRIBUTE

DOCUMENTS = Path(__file__).parent / "data" / "knowledge_base"
STORE_NAME = "support-knowledge-base"


def section_of(path: str) -> dict[str, Any]:
    """Attributes of one document: its top folder, for filtered searches."""
    return {"section": path.split("/")[0]}


@dag(
    dag_id="openai_vector_store_sync",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["openai", "vector-stores"],
    doc_md=__doc__,
)
def openai_vector_store_sync() -> None:
    sync = OpenAIVectorStoreSyncOperator(
        task_id="sync_knowledge_base",
        source=str(DOCUMENTS),
        vector_store_name=STORE_NAME,
        include=["**/*.md", "**/*.txt"],
        attributes=section_of,
        expires_after=30,  # days without activity; a daily sync keeps it alive
        deferrable=True,
        poll_interval=2,
        timeout=1800,
    )

    @task
    def smoke_test(summary: dict[str, Any]) -> dict[str, Any]:
        from airflow_openai_files.hooks import OpenAIFilesHook

        results = OpenAIFilesHook().search_vector_store(
            summary["vector_store_id"],
            "How long does a refund take to reach my payment method?",
            filters={"type": "eq", "key": "section", "value": "policies"},
            max_num_results=3,
        )
        if not results:
            raise ValueError(f"Search of {summary['vector_store_id']} found nothing")
        best = results[0]
        path = (best.get("attributes") or {}).get(PATH_ATTRIBUTE)
        if path != "policies/refunds.md":
            raise ValueError(f"Expected policies/refunds.md as the best hit, got {path} ({best.get('filename')})")
        return {"vector_store_id": summary["vector_store_id"], "best_hit": path, "score": best.get("score")}

    smoke_test(sync.output)


vector_store_sync_dag = openai_vector_store_sync()
