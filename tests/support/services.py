"""Loopback services for the distributed test: PostgreSQL, Redis, moto's S3 server and the emulator.

Each one is our own instance in a directory of ours, on a free 127.0.0.1 port, started as a child
process in its own session and stopped by its pid. PostgreSQL refuses to run as root, so when the
test runs as root the cluster belongs to an unprivileged account (``postgres`` when the Debian
package created it, else ``nobody``) and is started through ``setpriv``, which execs in place: the
pid we hold is the postmaster's.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.support.connections import free_port

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class MissingComponent(RuntimeError):
    """A component the distributed test needs is not installed and could not be installed."""


def wait_for(what: str, condition: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def listening(supervisor: Supervisor, name: str, port: int) -> Callable[[], bool]:
    """A ``wait_for`` condition: ``name`` accepts connections (and fails fast if it exited)."""

    def check() -> bool:
        supervisor.check_alive(name)
        return port_open(port)

    return check


class Supervisor:
    """Every process the harness starts, in start order; ``stop_all`` stops them in reverse order."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.order: list[str] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd or REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name] = proc
        if name not in self.order:
            self.order.append(name)
        return proc

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.order):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, size: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else ""

    def kill_group(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole session of ``name`` (a machine losing power, for a worker) and reap it."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        # Children left in this process's own session (task processes of a worker, for instance).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self, signals: dict[str, int] | None = None) -> list[str]:
        """Stop everything, newest first; return the names of processes that would not stop."""
        signals = signals or {}
        for name in reversed(self.order):
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signals.get(name, signal.SIGTERM))
        for name in reversed(self.order):
            self.stop(name)
        return [name for name in self.order if self.procs[name].poll() is None]


# ---- finding (and installing) components --------------------------------------------------------------
def _apt_install(package: str) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingComponent(f"{package} is not installed and apt-get is not usable here (needs root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", package], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise MissingComponent(f"apt-get install {package} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")


def postgres_bin_dir(install: bool = True) -> Path:
    """The newest ``/usr/lib/postgresql/<v>/bin`` (Debian's layout), installing the package when missing."""
    for attempt in range(2):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
        if found:
            return Path(found[-1]).parent
        if attempt == 0 and install:
            _apt_install("postgresql")
    raise MissingComponent("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")


def redis_server(install: bool = True) -> str:
    path = shutil.which("redis-server")
    if path is None and install:
        _apt_install("redis-server")
        path = shutil.which("redis-server")
    if path is None:
        raise MissingComponent("redis-server not found")
    return path


PYTHON_MODULES = {
    "celery": "celery",
    "redis": "redis",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "airflow.providers.celery": "apache-airflow-providers-celery",
    "airflow.providers.amazon": "apache-airflow-providers-amazon",
    "s3fs": "s3fs",
    "moto.server": "moto[server]",
    "boto3": "boto3",
}


def missing_python_modules() -> list[str]:
    missing = []
    for module, requirement in PYTHON_MODULES.items():
        check = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
        if check.returncode != 0:
            missing.append(requirement)
    return missing


# ---- PostgreSQL ---------------------------------------------------------------------------------------
class Postgres:
    """A throw-away cluster: trust auth on 127.0.0.1 only, fsync off (test data), database ``airflow``."""

    def __init__(self, supervisor: Supervisor, root: Path) -> None:
        self.supervisor = supervisor
        self.root = root
        self.port = free_port()
        self.bin = postgres_bin_dir()
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.url = f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        for account in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(account)
                for path in (self.root, self.data, self.sockets):
                    path.mkdir(parents=True, exist_ok=True)
                    os.chown(path, entry.pw_uid, entry.pw_gid)
                # Let the account reach its directories through ours.
                for parent in [self.root, *self.root.parents]:
                    if parent == Path("/"):
                        break
                    mode = parent.stat().st_mode
                    if not mode & 0o001:
                        parent.chmod(mode | 0o001)
                return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
        raise MissingComponent("running as root and no unprivileged account (postgres, nobody) to run PostgreSQL")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        prefix = self._as_owner()
        self.data.mkdir(exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        init = subprocess.run(
            [*prefix, str(self.bin / "initdb"), "-D", str(self.data), "-U", "airflow", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            env=env, capture_output=True, text=True, cwd=self.root,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout[-2000:]}{init.stderr[-2000:]}")
        self.supervisor.start(
            "postgres",
            [*prefix, str(self.bin / "postgres"), "-D", str(self.data), "-c", "listen_addresses=127.0.0.1",
             "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.sockets}", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
            env, cwd=self.root,
        )  # fmt: skip
        wait_for("PostgreSQL to accept connections", self._ready, timeout=60)
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="airflow", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE airflow")
        conn.close()

    def _ready(self) -> bool:
        self.supervisor.check_alive("postgres")
        return port_open(self.port)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="airflow", dbname="airflow")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


# ---- Redis --------------------------------------------------------------------------------------------
def start_redis(supervisor: Supervisor, root: Path) -> int:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    supervisor.start(
        "redis",
        [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(root), "--protected-mode", "yes"],
        {"PATH": os.environ.get("PATH", "")}, cwd=root,
    )  # fmt: skip
    wait_for("Redis to listen", listening(supervisor, "redis", port), timeout=30)
    return port


# ---- moto (S3) ----------------------------------------------------------------------------------------
class Moto:
    """moto's server mode: an S3-compatible endpoint whose state the test can read and reset."""

    def __init__(self, supervisor: Supervisor, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        moto_server = Path(sys.executable).with_name("moto_server")
        supervisor.start("moto", [str(moto_server), "-H", "127.0.0.1", "-p", str(self.port)], env)
        wait_for("moto to listen", listening(supervisor, "moto", self.port), timeout=60)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def reset(self, bucket: str) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=30).close()
        self.client().create_bucket(Bucket=bucket)

    def keys(self, bucket: str) -> list[tuple[str, int]]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [(item["Key"], item["Size"]) for page in pages for item in page.get("Contents", [])]

    def incomplete_multipart_uploads(self, bucket: str) -> list[str]:
        answer = self.client().list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in answer.get("Uploads", [])]


# ---- the emulator -------------------------------------------------------------------------------------
class EmulatorService:
    """``python -m airflow_openai_files.emulator`` as its own process, read through its HTTP APIs."""

    def __init__(self, supervisor: Supervisor, root: Path, env: dict[str, str], processing_delay: float) -> None:
        self.port = free_port()
        self.data = root
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.admin = f"http://127.0.0.1:{self.port}/_emulator"
        self.api_key = "sk-distributed-test"
        supervisor.start(
            "emulator",
            [sys.executable, "-m", "airflow_openai_files.emulator", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(root), "--processing-delay", str(processing_delay), "--api-key", self.api_key],
            env,
        )  # fmt: skip
        wait_for("the emulator to listen", listening(supervisor, "emulator", self.port), 60)

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
        request = urllib.request.Request(url, method=method, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")

    def reset(self) -> None:
        self._call("POST", f"{self.admin}/reset", {})

    def add_fault(self, **fault: Any) -> None:
        self._call("POST", f"{self.admin}/faults", fault)

    def files(self) -> list[dict[str, Any]]:
        answer = self._call("GET", f"{self.admin}/files")
        return list(answer["data"] if isinstance(answer, dict) else answer)

    def collection(self, path: str) -> list[dict[str, Any]] | None:
        """Every object of a public list endpoint (``batches``, ``fine_tuning/jobs``), or None if there is none."""
        items: list[dict[str, Any]] = []
        after = None
        while True:
            url = f"{self.base_url}/{path}?limit=100" + (f"&after={after}" if after else "")
            try:
                page = self._call("GET", url)
            except urllib.error.HTTPError as err:
                if err.code in (404, 405):
                    return None
                raise
            items.extend(page.get("data", []))
            if not page.get("has_more") or not page.get("data"):
                return items
            after = page["data"][-1]["id"]

    def _store(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the emulator's own SQLite store: the public API hides deleted files and has no Upload listing."""
        import sqlite3

        database = self.data / "emulator.sqlite3"
        if not database.exists():
            raise AssertionError(f"no emulator database at {database}")
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def pending_uploads(self) -> list[tuple[str, str, int]]:
        """Uploads still ``pending``: (id, filename, bytes received in parts)."""
        rows = self._store(
            "SELECT u.id, u.filename, COALESCE(SUM(p.bytes), 0) FROM uploads u "
            "LEFT JOIN parts p ON p.upload_id = u.id WHERE u.status = 'pending' GROUP BY u.id"
        )
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    def duplicate_files(self) -> list[tuple[str, str, int, int]]:
        """(filename, purpose, bytes, count) uploaded more than once, deleted files included.

        Files the service creates (batch output, fine-tune results) are left out: two jobs may well
        produce results of the same name and size, and no client sent them.
        """
        rows = self._store(
            "SELECT filename, purpose, bytes, COUNT(*) FROM files WHERE purpose NOT IN "
            "('assistants_output', 'batch_output', 'fine-tune-results') "
            "GROUP BY filename, purpose, bytes HAVING COUNT(*) > 1"
        )
        return [(str(a), str(b), int(c), int(d)) for a, b, c, d in rows]

    def created_files(self) -> int:
        return int(self._store("SELECT COUNT(*) FROM files")[0][0])
