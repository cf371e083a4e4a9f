"""Shared plumbing of the benchmark: sizes, fresh-process probes, curl under /usr/bin/time, servers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.files import sha256 as sha256_file  # noqa: F401  # one digest helper, under its old name here

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CURL = "/usr/bin/curl"
TIME = "/usr/bin/time"
MiB = 1024 * 1024
GiB = 1024 * MiB
API_KEY = "sk-bench-key"
_UNITS = {"": 1, "B": 1, "KIB": 1024, "MIB": MiB, "GIB": GiB, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_size(text: str) -> int:
    """``64MiB``, ``2GiB``, ``1048576`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 64MiB, 2GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def fmt_size(size: float) -> str:
    if size >= GiB and size % GiB == 0:
        return f"{size / GiB:.0f} GiB"
    return f"{size / MiB:.0f} MiB" if size % MiB == 0 else f"{size / MiB:.1f} MiB"


def fmt_mib(size: float | None) -> str:
    return "n/a" if size is None else f"{size / MiB:.1f} MiB"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Sample:
    """The runs of one measurement: wall seconds and peak RSS growth (bytes) per run."""

    seconds: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    def add(self, result: dict[str, Any]) -> None:
        self.seconds.append(float(result["seconds"]))
        if result.get("rss_growth") is not None:
            self.rss.append(float(result["rss_growth"]))

    @property
    def time(self) -> float:
        return median(self.seconds)

    @property
    def peak_rss(self) -> float | None:
        """The worst run's RSS growth: the memory bound must hold on every run, not on the median."""
        return max(self.rss) if self.rss else None


def probe_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    env.update(extra or {})
    return env


def run_probe(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; its last stdout line is a JSON result."""
    done = subprocess.run(
        [PYTHON, "-m", module, *args],
        cwd=REPO,
        env=probe_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_curl(args: Sequence[str], timeout: float = 1800) -> dict[str, Any]:
    """curl under ``/usr/bin/time``: wall seconds of the whole process and its peak RSS (absolute)."""
    cmd = [TIME, "-f", "BENCH-TIME %e %M", CURL, "-sS", "--fail", *args]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr[-2000:]}")
    match = re.search(r"BENCH-TIME \S+ (\d+)", done.stderr)
    return {"seconds": seconds, "peak_rss": int(match.group(1)) * 1024 if match else None, "stdout": done.stdout}


def make_file(path: Path, size: int) -> Path:
    """Incompressible content (a 16 MiB random block repeated, each MiB stamped with its index)."""
    block = bytearray(os.urandom(16 * MiB))
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            step = min(len(block), size - written)
            for offset in range(0, step, MiB):
                index = (written + offset) // MiB
                block[offset : offset + 8] = index.to_bytes(8, "little")
            handle.write(memoryview(block)[:step])
            written += step
    return path


def http_json(method: str, url: str, payload: Any = None) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode() if payload is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def sink() -> Iterator[str]:
    """The loopback sink of tests/support (discards uploads, generates ``file-sink-<N>`` downloads)."""
    from tests.support.processes import serve

    with serve("-m", "tests.support.sink") as (url, _):
        yield url


@contextlib.contextmanager
def emulator(data_dir: Path, processing_delay: float = 0.0) -> Iterator[Any]:
    """The emulator in its own process (so its CPU is not charged to the client being measured)."""
    from airflow_openai_files.emulator import EmulatorProcess

    with EmulatorProcess(data_dir=data_dir, processing_delay=processing_delay) as emu:
        yield emu


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**MISS**"


@dataclass
class Row:
    """One line of the results table."""

    section: str
    measurement: str
    time: str = ""
    ratio: str = ""
    rss: str = ""
    target: str = ""
    result: str = ""


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| Section | Measurement | Time (median) | vs curl | Peak RSS growth | Target | Result |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    lines += [
        f"| {r.section} | {r.measurement} | {r.time} | {r.ratio} | {r.rss} | {r.target} | {r.result} |" for r in rows
    ]
    return "\n".join(lines)
