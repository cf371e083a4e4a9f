"""The example DAGs under CeleryExecutor with two workers that share nothing but S3 staging.

Validation is on (the fine-tune example validates its upload; the batch example too, by default):
the uploads read their source from ``s3://`` on a worker that did not write it.
"""

from __future__ import annotations

import time

import pytest

from tests.support.distributed_harness import TIMINGS, Deployment, clean
from tests.support.services import wait_for

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]


def _check_runs(fresh: Deployment, dag_id: str, run_ids: list[str], label: str) -> None:
    started = time.monotonic()
    results = fresh.wait_runs(dag_id, run_ids, timeout=420)
    TIMINGS.append((f"{label}: {len(run_ids)} runs", time.monotonic() - started))
    errors = {run_id: fresh.first_error(r) for run_id, r in results.items() if r.state != "success"}
    assert not errors, errors
    for result in results.values():
        assert all(ti["state"] == "success" and ti["try_number"] == 1 for ti in result.tis), result.summary()
    assert not clean(fresh.leftovers())


def test_fine_tune_example_with_s3_staging(fresh: Deployment) -> None:
    dag_id = "openai_fine_tune_data_pipeline"
    cluster = fresh.cluster
    cluster.unpause(dag_id)  # @daily: the scheduler creates the latest interval's run itself
    run_ids = [cluster.trigger(dag_id, logical_date=f"2025-06-0{day}T00:00:00Z") for day in (1, 2)]
    run_ids += wait_for(
        "the scheduled run", lambda: [r for r in cluster.runs(dag_id) if r.startswith("scheduled__")], timeout=60
    )
    _check_runs(fresh, dag_id, run_ids, "fine-tune example, S3 staging")
    # A training and a validation file per run, and one fine-tuning job per run.
    processed = [f for f in fresh.emulator.files() if f["purpose"] == "fine-tune"]
    assert len(processed) == 2 * len(run_ids) and all(f["status"] == "processed" for f in processed), processed
    jobs = fresh.emulator.collection("fine_tuning/jobs") or []
    assert len(jobs) == len(run_ids), jobs


def test_batch_example_with_s3_staging(fresh: Deployment) -> None:
    dag_id = "openai_batch_input_files"
    cluster = fresh.cluster
    cluster.unpause(dag_id)
    run_ids = [cluster.trigger(dag_id) for _ in range(2)]
    _check_runs(fresh, dag_id, run_ids, "batch example, S3 staging")
    # The example deletes its input at the end: the emulator holds no batch file, and created one per run.
    assert not [f for f in fresh.emulator.files() if f["purpose"] == "batch"]
    assert fresh.emulator.created_files() == len(run_ids)
