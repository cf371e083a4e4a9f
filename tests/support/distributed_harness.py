"""The whole distributed deployment for ``tests/distributed``: start it, drive DAG runs, check the end state.

``Deployment.start()`` brings up PostgreSQL, Redis, moto (S3), the emulator, a gate proxy in front of
the emulator (for crashes mid-transfer), and the Airflow cluster; ``stop()`` stops every process it
started, in reverse order, whatever happened. ``leftovers()`` is the end state every test asserts:
no duplicate files on the emulator, no pending Upload, no ``.part`` file on any worker's disk, no
``.part`` object and no incomplete multipart upload in the bucket.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.airflow_cluster import TERMINAL, WORKERS, Cluster
from tests.support.gate import Gate
from tests.support.services import REPO, EmulatorService, Moto, Postgres, Supervisor, start_redis, wait_for

BUCKET = "openai-staging"
AWS_CONN = "aws_moto"
STAGING = f"s3://{AWS_CONN}@{BUCKET}/openai"
GATED_CONN = "openai_files_gated"
TIMINGS: list[tuple[str, float]] = []
KNOWN_BUGS_SEEN: list[str] = []  # what each expected failure actually found, printed in the summary


def base_dir() -> Path:
    # Not under /tmp: inside a worker's mount namespace /tmp is that worker's own directory.
    parent = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
    base = Path(tempfile.mkdtemp(prefix="openai-files-distributed-", dir=parent))
    base.chmod(0o755)
    return base


@dataclass
class RunResult:
    dag_id: str
    run_id: str
    state: str
    seconds: float
    tis: list[dict[str, Any]] = field(default_factory=list)
    failed_tries: list[tuple[str, int, int, str | None]] = field(default_factory=list)

    def summary(self) -> str:
        tasks = ", ".join(
            f"{ti['task_id']}{'' if ti['map_index'] < 0 else '[' + str(ti['map_index']) + ']'}="
            f"{ti['state']}#{ti['try_number']}@{ti['hostname']}"
            for ti in self.tis
        )
        return f"{self.dag_id} {self.run_id}: {self.state} in {self.seconds:.1f}s [{tasks}]"


class Deployment:
    def __init__(self) -> None:
        self.base = base_dir()
        self.logs = self.base / "logs"
        self.logs.mkdir()
        self.sup = Supervisor(self.logs)
        self.netns = os.environ.get("OPENAI_FILES_DIST_NETNS") == "1"
        self.cluster: Cluster
        self.pg: Postgres
        self.moto: Moto
        self.emulator: EmulatorService
        self.gate: Gate | None = None

    def start(self) -> None:
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPENAI_FILES"))}
        env["PYTHONPATH"] = str(REPO)
        self.pg = Postgres(self.sup, self.base / "postgres")
        self.pg.start()
        redis_port = start_redis(self.sup, self.base / "redis")
        self.moto = Moto(self.sup, env)
        self.moto.reset(BUCKET)
        self.emulator = EmulatorService(self.sup, self.base / "emulator", env, processing_delay=2.0)
        self.gate = Gate(self.emulator.port)
        self.gate.start()
        emulator_conn = {"conn_type": "openai_files", "host": self.emulator.base_url, "password": self.emulator.api_key}
        gated_conn = dict(
            emulator_conn,
            host=f"http://127.0.0.1:{self.gate.port}/v1",
            # Uploads API above 32 MiB, so a crash can land between parts.
            extra={"multipart_threshold": 32 * 1024 * 1024, "max_retries": 2},
        )
        aws = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.moto.url, "region_name": "us-east-1"},
        }
        extra_env = {
            "AIRFLOW_CONN_OPENAI_FILES_DEFAULT": json.dumps(emulator_conn),
            f"AIRFLOW_CONN_{GATED_CONN.upper()}": json.dumps(gated_conn),
            f"AIRFLOW_CONN_{AWS_CONN.upper()}": json.dumps(aws),
            "OPENAI_FILES_STAGING": STAGING,
        }
        self.cluster = Cluster(self.base, self.sup, self.pg, redis_port, extra_env, netns=self.netns)
        self.cluster.install_dags(REPO / "dags_examples", REPO / "tests" / "distributed" / "dags")
        self.cluster.start()
        TIMINGS.append(("start-up (services + Airflow)", time.monotonic() - started))

    def describe(self) -> str:
        return (
            f"base {self.base}; PostgreSQL :{self.pg.port}, moto :{self.moto.port}, emulator :{self.emulator.port}, "
            f"api-server :{self.cluster.api_port}; workers isolated by mount namespace: {self.cluster.isolated}; "
            f"private network namespace: {self.netns}"
        )

    def stop(self) -> list[str]:
        if self.gate is not None:
            self.gate.release()
            self.gate.stop()
        still = self.sup.stop_all()
        if os.environ.get("OPENAI_FILES_DIST_KEEP") != "1" and not still:
            shutil.rmtree(self.base, ignore_errors=True)
        else:
            print(f"distributed test files kept in {self.base}", file=sys.stderr)
        return still

    def reset(self) -> None:
        """A clean slate for each test: no file on the emulator, an empty bucket."""
        if self.gate is not None:
            self.gate.release()
        self.cluster.ensure_workers()
        self.emulator.reset()
        self.moto.reset(BUCKET)
        # What an earlier test left on the workers' disks was that test's finding, not this one's.
        for name in WORKERS:
            for path in self.cluster.worker_dirs[name].rglob("*.part"):
                path.unlink(missing_ok=True)

    # ---- runs ---------------------------------------------------------------------------------------
    def wait_runs(
        self, dag_id: str, run_ids: list[str], timeout: float, stop_on_retry: bool = True
    ) -> dict[str, RunResult]:
        """Wait for each run to end. A run with a failed try and no crash injected is failed at once
        (``stop_on_retry``): the example DAGs wait a minute between retries, and the first error is the news.
        """
        started = time.monotonic()
        results: dict[str, RunResult] = {}

        def all_done() -> bool:
            self.sup.check_alive()
            states = self.cluster.runs(dag_id)
            for run_id in run_ids:
                if run_id in results:
                    continue
                state = states.get(run_id)
                if stop_on_retry and state not in TERMINAL:
                    tis = self.cluster.task_instances(dag_id, run_id)
                    if any(ti["state"] in ("up_for_retry", "failed", "upstream_failed") for ti in tis):
                        self.cluster.fail_run(dag_id, run_id)
                        state = "failed"
                if state in TERMINAL:
                    results[run_id] = RunResult(
                        dag_id,
                        run_id,
                        state,
                        time.monotonic() - started,
                        self.cluster.task_instances(dag_id, run_id),
                        self.cluster.failed_tries(dag_id, run_id),
                    )
            return len(results) == len(run_ids)

        try:
            wait_for(f"{len(run_ids)} run(s) of {dag_id}", all_done, timeout=timeout, interval=1.0)
        except AssertionError as err:
            tails = "\n".join(f"--- {n} ---\n{self.sup.tail(n, 1500)}" for n in ("scheduler", *WORKERS))
            raise AssertionError(f"{err}; finished: {sorted(results)}\n{tails}") from None
        return results

    def first_error(self, result: RunResult) -> str:
        """The exception of the first failed try of a run, from the log of the worker that ran it."""
        tries: list[tuple[str, int | None]] = [(t, n) for t, _m, n, _h in result.failed_tries]
        tries += [(ti["task_id"], None) for ti in result.tis if ti["state"] not in ("success", None)]
        for task_id, try_number in tries:
            errors = _exceptions(self.cluster.task_log(result.dag_id, result.run_id, task_id, try_number))
            if errors:
                return f"{task_id} try {try_number or '?'}: " + " | ".join(errors[:3])
        return ""

    # ---- end state ----------------------------------------------------------------------------------
    def local_part_files(self) -> list[str]:
        found = []
        for name in WORKERS:
            root = self.cluster.worker_dirs[name]
            for path in root.rglob("*.part"):
                found.append(f"{name}: {path.relative_to(root)} ({path.stat().st_size} bytes)")
        return found

    def leftovers(self) -> dict[str, list[Any]]:
        """Everything a finished run must not leave behind; empty lists when clean."""
        keys = self.moto.keys(BUCKET)
        return {
            "duplicate files on the emulator": self.emulator.duplicate_files(),
            "pending Uploads on the emulator": self.emulator.pending_uploads(),
            "duplicate batches": _duplicates(self.emulator.collection("batches"), "input_file_id"),
            "duplicate fine-tuning jobs": _duplicates(self.emulator.collection("fine_tuning/jobs"), "training_file"),
            ".part files on worker disks": self.local_part_files(),
            ".part objects in S3": [(key, size) for key, size in keys if key.endswith(".part")],
            "incomplete S3 multipart uploads": self.moto.incomplete_multipart_uploads(BUCKET),
        }


def _exceptions(log_text: str) -> list[str]:
    """``Type: message`` of each exception in a task log (JSON lines, with ``error_detail``)."""
    found = []
    for line in log_text.splitlines():
        if not line.startswith("{") or "error_detail" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for detail in record.get("error_detail") or []:
            found.append(f"{detail.get('exc_type')}: {str(detail.get('exc_value'))[:500]}")
    return found


def _duplicates(items: list[dict[str, Any]] | None, key: str) -> list[tuple[str, int]]:
    if not items:
        return []
    counts: dict[str, int] = {}
    for item in items:
        value = str(item.get(key))
        counts[value] = counts.get(value, 0) + 1
    return [(value, count) for value, count in counts.items() if count > 1]


def clean(leftovers: dict[str, list[Any]], *ignore: str) -> dict[str, list[Any]]:
    """The non-empty entries of ``leftovers`` (minus the ``ignore``d kinds)."""
    return {kind: found for kind, found in leftovers.items() if found and kind not in ignore}


class KnownPackageBug(AssertionError):
    """A failure whose cause is a known, reported package bug (tests expect it with ``xfail(strict=True)``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        KNOWN_BUGS_SEEN.append(message[:1500])


def raise_known(signature: str, text: str, reason: str) -> None:
    """Raise ``KnownPackageBug`` when ``signature`` is in ``text``: that failure, and no other, is expected."""
    if signature in text:
        raise KnownPackageBug(f"{reason}: {text[:3000]}")
