"""Airflow 3 with CeleryExecutor as a team deploys it, on one host: the parts of a multi-machine setup.

Control plane (api-server, scheduler, dag-processor, triggerer) shares one AIRFLOW_HOME; each Celery
worker gets its own home, working directory and TMPDIR and, where ``unshare -m`` works, its own mount
namespace in which its directory is bind-mounted on ``/tmp`` and the other worker's and the control
plane's directories are covered by empty tmpfs: what one worker writes locally, nothing else can read,
as on two machines. The DAG folder and the code are visible to all (the image every machine runs).

Workers listen on ``default`` and on their own queue (``worker_a`` / ``worker_b``) so a test can pin
a task to one machine. ``TI.hostname`` is the worker's name (``[core] hostname_callable``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from tests.support.services import REPO, Postgres, Supervisor, free_port, wait_for

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
WORKERS = ("worker_a", "worker_b")
TERMINAL = ("success", "failed")


def can_unshare_mounts() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


class Cluster:
    def __init__(
        self,
        base: Path,
        supervisor: Supervisor,
        postgres: Postgres,
        redis_port: int,
        extra_env: dict[str, str],
        netns: bool,
    ) -> None:
        self.base = base
        self.sup = supervisor
        self.pg = postgres
        self.netns = netns
        self.isolated = can_unshare_mounts()
        self.api_port = free_port()
        self.log_ports = {name: free_port() for name in WORKERS}
        self.control = base / "control"
        self.dags = base / "dags"
        self.worker_dirs = {name: base / name for name in WORKERS}
        for path in (self.control / "home", self.dags, *self.worker_dirs.values()):
            path.mkdir(parents=True, exist_ok=True)
        for path in self.worker_dirs.values():
            for sub in ("home", "work", "tmp"):
                (path / sub).mkdir(exist_ok=True)
        self.worker_env_overrides: dict[str, dict[str, str | None]] = {name: {} for name in WORKERS}
        self._log_offset: dict[str, int] = {}
        broker = f"redis://127.0.0.1:{redis_port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPENAI_FILES"))}
        env.update(
            PYTHONPATH=str(REPO),
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
            AIRFLOW__CORE__FERNET_KEY="",
            AIRFLOW__CORE__HOSTNAME_CALLABLE="tests.support.worker_identity.hostname",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.api_port}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres.url,
            AIRFLOW__CELERY__BROKER_URL=broker,
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+postgresql+psycopg2://airflow@127.0.0.1:{postgres.port}/airflow",
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
            AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER="1",
            AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT="86400",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__SECRET_KEY=secrets.token_hex(32),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="1",
            # A worker killed outright is noticed only when its task stops heartbeating: 300 s by default.
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="3",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="10",
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            AIRFLOW__TRIGGERER__CAPACITY="200",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )
        env.update(extra_env)
        self.env = env
        self.token: str | None = None

    # ---- environments ------------------------------------------------------------------------------
    def control_env(self) -> dict[str, str]:
        return dict(self.env, AIRFLOW_HOME=str(self.control / "home"), TMPDIR=str(self.control / "home"))

    def worker_env(self, name: str) -> dict[str, str]:
        root = self.worker_dirs[name]
        env = dict(self.env)
        env.update(
            AIRFLOW_HOME=str(root / "home"),
            HOME=str(root / "home"),
            TMPDIR="/tmp" if self.isolated else str(root / "tmp"),
            OPENAI_FILES_WORKER_NAME=name,
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(self.log_ports[name]),
        )
        for key, value in self.worker_env_overrides[name].items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def _worker_argv(self, name: str) -> list[str]:
        argv = [AIRFLOW, "celery", "worker", "--celery-hostname", f"{name}@%h", "--queues", f"default,{name}",
                "--concurrency", "2", "--without-mingle", "--without-gossip"]  # fmt: skip
        if not self.netns:
            # The log server listens on every interface; only in a private network namespace is that loopback.
            argv.append("--skip-serve-logs")
        if not self.isolated:
            return argv
        root = self.worker_dirs[name]
        hide = [self.control, *(self.worker_dirs[o] for o in WORKERS if o != name)]
        # A checkout (and its venv) under /tmp, as CI's temporary clone is, must stay visible to the worker:
        # bind it into the worker's own tmp at the same relative place before that tmp covers /tmp.
        keep = [REPO.resolve(), Path(sys.prefix).resolve()]
        keep = [p for p in keep if p.is_relative_to("/tmp") and not any(p != q and p.is_relative_to(q) for q in keep)]
        binds = []
        for path in dict.fromkeys(keep):
            inside = root / "tmp" / path.relative_to("/tmp")
            inside.mkdir(parents=True, exist_ok=True)
            binds.append(f"mount --rbind {path} {inside}")
        script = " && ".join(
            [*binds, f"mount --rbind {root / 'tmp'} /tmp", *(f"mount -t tmpfs none {p}" for p in hide)]
        )
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", f'{script} && exec "$@"', "sh", *argv]

    # ---- lifecycle ----------------------------------------------------------------------------------
    def install_dags(self, *folders: Path) -> None:
        for folder in folders:
            for item in folder.iterdir():
                if item.name.startswith(".") or item.name == "__pycache__":
                    continue
                target = self.dags / item.name
                if item.is_dir():
                    shutil.copytree(item, target, dirs_exist_ok=True)
                elif item.suffix in (".py", ".csv", ".jsonl"):
                    shutil.copy2(item, target)

    def airflow(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [AIRFLOW, *args], env=self.control_env(), cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> None:
        self.airflow("db", "migrate")
        env = self.control_env()
        self.sup.start("api-server", [AIRFLOW, "api-server", "--port", str(self.api_port)], env)
        self.sup.start("scheduler", [AIRFLOW, "scheduler", "--skip-serve-logs"], env)
        self.sup.start("dag-processor", [AIRFLOW, "dag-processor"], env)
        self.sup.start("triggerer", [AIRFLOW, "triggerer", "--skip-serve-logs"], env)
        for name in WORKERS:
            self.start_worker(name)
        wait_for("the api-server to be healthy", self._healthy, timeout=120)
        for name in WORKERS:
            self.wait_worker_ready(name)

    def start_worker(self, name: str) -> None:
        log = self.sup.logs / f"{name}.log"
        self._log_offset[name] = log.stat().st_size if log.exists() else 0
        self.sup.start(name, self._worker_argv(name), self.worker_env(name), cwd=self.worker_dirs[name] / "work")

    def wait_worker_ready(self, name: str, timeout: float = 120) -> None:
        log = self.sup.logs / f"{name}.log"

        def ready() -> bool:
            self.sup.check_alive(name)
            with log.open("rb") as handle:
                handle.seek(self._log_offset.get(name, 0))
                return b" ready." in handle.read()

        wait_for(f"Celery {name} to be ready", ready, timeout=timeout, interval=0.5)

    def restart_worker(self, name: str) -> None:
        self.sup.stop(name, signal.SIGTERM, timeout=60)
        self.start_worker(name)
        self.wait_worker_ready(name)

    def kill_worker(self, name: str) -> None:
        """kill -9 everything the worker runs, as when its machine dies.

        Killing the worker's process group is not enough: the task SDK's supervisor starts each task
        process in a session of its own, so it would go on running (and finish its upload) unseen.
        """
        root = psutil.Process(self.sup.procs[name].pid)
        family = [root, *root.children(recursive=True)]
        for proc in family:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=30)
        self.sup.kill_group(name, signal.SIGKILL)

    def ensure_workers(self) -> None:
        """Start again any worker a failed test left dead."""
        for name in WORKERS:
            if not self.sup.alive(name):
                self.start_worker(name)
        for name in WORKERS:
            self.wait_worker_ready(name)

    def _healthy(self) -> bool:
        self.sup.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=3) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    # ---- REST API -----------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None) -> Any:
        if self.token is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/auth/token", timeout=30) as answer:
                self.token = json.loads(answer.read())["access_token"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/v2/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{method} {path}: {err.code} {err.read()[:2000]!r}") from None

    def wait_dag(self, dag_id: str, timeout: float = 120) -> None:
        def parsed() -> bool:
            self.sup.check_alive()
            return bool(self.pg.query("SELECT 1 FROM dag WHERE dag_id = %s AND is_stale = false", dag_id))

        wait_for(f"the dag-processor to parse {dag_id}", parsed, timeout=timeout, interval=1)

    def unpause(self, dag_id: str) -> None:
        self.wait_dag(dag_id)
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, logical_date: str | None = None, conf: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        return str(self.api("POST", f"dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def fail_run(self, dag_id: str, run_id: str) -> None:
        with contextlib.suppress(AssertionError):
            self.api("PATCH", f"dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})

    # ---- metadata database --------------------------------------------------------------------------
    def runs(self, dag_id: str) -> dict[str, str]:
        return dict(self.pg.query("SELECT run_id, state FROM dag_run WHERE dag_id = %s", dag_id))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        rows = self.pg.query(
            "SELECT task_id, map_index, state, try_number, hostname, id::text FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s ORDER BY task_id, map_index",
            dag_id,
            run_id,
        )
        keys = ("task_id", "map_index", "state", "try_number", "hostname", "id")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def failed_tries(self, dag_id: str, run_id: str) -> list[tuple[str, int, int, str | None]]:
        """(task_id, map_index, try_number, hostname) of every try that did not succeed (task_instance_history)."""
        rows = self.pg.query(
            "SELECT task_id, map_index, try_number, hostname FROM task_instance_history "
            "WHERE dag_id = %s AND run_id = %s AND state <> 'success' ORDER BY task_id, try_number",
            dag_id,
            run_id,
        )
        return [(str(a), int(b), int(c), d) for a, b, c, d in rows]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> str:
        """The task's log files from every worker's home (each machine keeps its own)."""
        texts = []
        attempt = f"attempt={try_number}.log" if try_number else "attempt=*.log"
        for name in WORKERS:
            logs = self.worker_dirs[name] / "home" / "logs"
            for path in sorted(logs.glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/**/{attempt}")):
                texts.append(f"--- {name}: {path.relative_to(logs)} ---\n{path.read_text(errors='replace')}")
        return "\n".join(texts)

    def task_process(self, ti_id: str) -> psutil.Process | None:
        """The task's own process: the task SDK titles it ``airflow worker -- <ti id>``."""
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if ti_id in " ".join(proc.info["cmdline"] or ()) and "airflow worker --" in " ".join(
                    proc.info["cmdline"] or ()
                ):
                    return proc
        return None
