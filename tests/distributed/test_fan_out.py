"""A mapped upload fan-out across two workers that share only S3: every file uploaded exactly once."""

from __future__ import annotations

import os
import time

import pytest

from tests.support.distributed_harness import TIMINGS, Deployment, clean

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]

DAG_ID = "openai_mapped_uploads"
RUNS = int(os.environ.get("OPENAI_FILES_DIST_FANOUT_RUNS", "3"))
COUNT = int(os.environ.get("OPENAI_FILES_DIST_FANOUT_COUNT", "10"))


def test_mapped_uploads_fan_out(fresh: Deployment) -> None:
    cluster = fresh.cluster
    cluster.unpause(DAG_ID)
    started = time.monotonic()
    run_ids = [cluster.trigger(DAG_ID, conf={"count": COUNT}) for _ in range(RUNS)]
    results = fresh.wait_runs(DAG_ID, run_ids, timeout=600)
    TIMINGS.append((f"fan-out: {RUNS} runs x {COUNT} mapped uploads", time.monotonic() - started))
    failed = {run_id: fresh.first_error(r) for run_id, r in results.items() if r.state != "success"}
    assert not failed, failed
    hosts = set()
    for result in results.values():
        uploads = [ti for ti in result.tis if ti["task_id"] == "upload"]
        assert len(uploads) == COUNT and all(ti["state"] == "success" for ti in uploads), result.summary()
        hosts |= {ti["hostname"] for ti in result.tis}
    files = fresh.emulator.files()
    assert len(files) == RUNS * COUNT, f"{len(files)} files for {RUNS * COUNT} uploads"
    assert fresh.emulator.created_files() == RUNS * COUNT
    assert not clean(fresh.leftovers())
    # Both machines took part: the fan-out really crossed workers.
    assert hosts >= {"worker_a", "worker_b"}, hosts
