"""Crashes mid-transfer: kill -9 of the task process or of the whole Celery worker, and SIGTERM.

The gate proxy in front of the emulator freezes the targeted transfer once it has moved
``after_mib`` MiB, so every crash lands in the middle of an upload (between Uploads API parts) or of
a download (part of the body already written). Then: the run must succeed through Airflow's
retries, with the killed task on its second try or later, and leave nothing behind: no duplicate
file, no pending Upload, no ``.part`` on any disk or in the bucket, no incomplete multipart upload.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import pytest

from tests.support.airflow_cluster import WORKERS
from tests.support.distributed_harness import TIMINGS, Deployment, KnownPackageBug, clean
from tests.support.services import wait_for

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

DAG_ID = "openai_crash_transfer"
TRANSFERS = ("upload", "download_s3", "download_local")


@dataclass(frozen=True)
class Case:
    task_id: str
    target: str  # "task": the task process; "worker": the whole Celery worker
    sig: int
    direction: str
    after_mib: int
    known_bug: str | None = None

    @property
    def id(self) -> str:
        return f"{self.task_id}-{self.target}-{signal.Signals(self.sig).name}"


CASES = [
    Case("upload", "task", signal.SIGKILL, "up", 32),
    Case("upload", "worker", signal.SIGKILL, "up", 32),
    Case("upload", "task", signal.SIGTERM, "up", 32),
    Case("download_s3", "task", signal.SIGKILL, "down", 120),
    Case("download_s3", "worker", signal.SIGKILL, "down", 120),
    Case("download_local", "task", signal.SIGKILL, "down", 64),
    Case("download_local", "worker", signal.SIGKILL, "down", 64),
]


def _params(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, raises=KnownPackageBug, reason=case.known_bug)] if case.known_bug else []
    return pytest.param(case, id=case.id, marks=marks)


def _hold_target(fresh: Deployment, case: Case, run_id: str) -> dict[str, object]:
    """Wait until the gate holds the target task's transfer (releasing earlier transfers); return its TI."""
    cluster, gate = fresh.cluster, fresh.gate
    assert gate is not None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if not gate.wait_held(timeout=2):
            fresh.sup.check_alive()
            state = cluster.runs(DAG_ID).get(run_id)
            assert state not in ("success", "failed"), f"run ended ({state}) before the crash could be injected"
            continue
        running = [
            ti
            for ti in cluster.task_instances(DAG_ID, run_id)
            if ti["task_id"] in TRANSFERS and ti["state"] == "running"
        ]
        if [ti["task_id"] for ti in running] == [case.task_id]:
            return running[0]
        gate.release()  # an earlier transfer of the chain: let it through and wait for ours
        gate.arm(case.direction, case.after_mib * 1024 * 1024)
    raise AssertionError(f"the gate never held {case.task_id}")


@pytest.mark.parametrize("case", [_params(case) for case in CASES])
def test_crash_mid_transfer(fresh: Deployment, case: Case) -> None:
    cluster, gate = fresh.cluster, fresh.gate
    assert gate is not None
    cluster.unpause(DAG_ID)
    started = time.monotonic()
    gate.arm(case.direction, case.after_mib * 1024 * 1024)
    run_id = cluster.trigger(DAG_ID)
    ti = _hold_target(fresh, case, run_id)
    ti_id, host = str(ti["id"]), str(ti["hostname"])
    assert host in WORKERS, ti
    if case.target == "task":
        proc = wait_for(f"the process of {case.task_id}", lambda: cluster.task_process(ti_id), timeout=30)
        proc.send_signal(case.sig)  # SIGTERM: on_kill runs while the transfer is still held
    else:
        cluster.kill_worker(host)
        assert cluster.task_process(ti_id) is None, "the task process survived its worker's kill -9"
        # The machine comes back; its lost task is retried only after the heartbeat timeout.
        cluster.start_worker(host)
        cluster.wait_worker_ready(host)
    gate.release()
    results = fresh.wait_runs(DAG_ID, [run_id], timeout=300, stop_on_retry=False)
    result = results[run_id]
    TIMINGS.append((f"crash {case.id} (killed on {host})", time.monotonic() - started))
    assert result.state == "success", f"{result.summary()}\n{fresh.first_error(result)}"
    target = next(t for t in result.tis if t["task_id"] == case.task_id)
    assert target["try_number"] >= 2, result.summary()
    files = fresh.emulator.files()
    assert len(files) == 1, f"{len(files)} files on the emulator: {[f['filename'] for f in files]}"
    left = clean(fresh.leftovers())
    if left and case.known_bug:
        raise KnownPackageBug(f"{case.known_bug}: {left}")
    assert not left, left
