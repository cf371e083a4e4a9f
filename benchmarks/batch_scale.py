"""Benchmark: a whole batch job of N small requests (1,000,000 by default) through ``OpenAIBatchOperator``.

One task, on the worker (``deferrable=False``), against the emulator in its own process (so the figures are
the client's alone): the input is split into shards of at most 50,000 requests, each shard uploaded and run as
a batch, the results merged into one output file in the input's order. Each run is a fresh Python process (nothing
allocated by an earlier run hides growth); printed per run and as the median of ``--runs`` runs: wall time,
number of batches, and the client's RSS growth (the peak after the run minus the RSS just before it, the
hook and its session already built; the kernel's high-water mark is reset first, so no spike is missed).
Goal: growth <= 128 MiB. The end state is checked, not assumed: one output line per request, in order,
each shard run exactly once.

    python benchmarks/batch_scale.py [--lines 1000000] [--runs 3] [--batch-lines 50000]

Loopback only; needs ~4 GB of free disk under the temporary directory for a million lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1024 * 1024
ENDPOINT = "/v1/chat/completions"


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def rss(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def write_input(path: Path, lines: int) -> int:
    """``lines`` small chat requests, streamed to ``path``; returns its size."""
    with open(path, "wb", buffering=4 * MiB) as out:
        for i in range(lines):
            row = {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": ENDPOINT,
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Say hi to {i}"}]},
            }
            out.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")
    return path.stat().st_size


class Store:
    """The task state store of Airflow 3.3 (what the operator records for exactly-once)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def context(run: int) -> dict[str, Any]:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    ti = SimpleNamespace(try_number=1, task_id="score", dag_id="batch_scale", run_id=f"bench_{run}", map_index=-1)
    return {
        "ti": ti,
        "task_instance": ti,
        "dag_run": SimpleNamespace(start_date=now, queued_at=now, run_id=ti.run_id),
        "run_id": ti.run_id,
        "task_state_store": Store(),
    }


def check_output(path: Path, lines: int) -> None:
    """Every request answered once, in the input's order (streamed: the check must not skew the figures)."""
    count = 0
    with open(path, "rb") as stream:
        for count, raw in enumerate(stream, start=1):
            custom_id = json.loads(raw)["custom_id"]
            if custom_id != f"r{count - 1}":
                raise AssertionError(f"output line {count} is {custom_id!r}, expected 'r{count - 1}'")
    if count != lines:
        raise AssertionError(f"{count} output lines for {lines} requests")


def one_run(run: int, source: Path, work: Path, lines: int, batch_lines: int, poll: float) -> dict[str, Any]:
    from airflow_openai_files.emulator import EmulatorProcess
    from airflow_openai_files.operators import OpenAIBatchOperator
    from airflow_openai_files.operators._batch_shards import SHARD_METADATA

    with EmulatorProcess(data_dir=work / f"emu{run}") as emu:
        os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = emu.airflow_connection()
        out, err = work / f"out{run}.jsonl", work / f"err{run}.jsonl"
        op = OpenAIBatchOperator(
            task_id="score",
            input_file=str(source),
            endpoint=ENDPOINT,
            output_destination=str(out),
            error_destination=str(err),
            max_batch_lines=batch_lines,
            deferrable=False,
            poll_interval=poll,
        )
        op.hook.get_file  # noqa: B018  (build the hook and its session before the baseline)
        baseline = rss("VmRSS")
        reset_peak()
        started = time.monotonic()
        result = op.execute(context(run))
        wall = time.monotonic() - started
        growth = rss("VmHWM") - baseline
        batches = emu.batches()
        shards = [(b.get("metadata") or {}).get(SHARD_METADATA) for b in batches]
        if len(set(shards)) != len(shards) or any(b["status"] != "completed" for b in batches):
            raise AssertionError(f"a shard ran twice or did not complete: {shards}")
        check_output(out, lines)
        figures = {
            "run": run,
            "lines": lines,
            "wall_s": round(wall, 1),
            "batches": len(batches),
            "rss_growth_mib": round(growth / MiB, 1),
            "output_mib": round(out.stat().st_size / MiB, 1),
            "completed": result["request_counts"]["completed"],
            "usage": result["usage"],
        }
        out.unlink()
        err.unlink(missing_ok=True)
    shutil.rmtree(work / f"emu{run}", ignore_errors=True)
    print(json.dumps(figures), flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-lines", type=int, default=50_000)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--one-run", nargs=2, metavar=("RUN", "WORK_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_run:  # the child: one measured run, its figures as the last line of stdout
        run, work_dir = int(args.one_run[0]), Path(args.one_run[1])
        one_run(run, work_dir / "input.jsonl", work_dir, args.lines, args.batch_lines, args.poll_interval)
        return 0
    work = Path(tempfile.mkdtemp(prefix="batch_scale_"))
    runs = []
    try:
        size = write_input(work / "input.jsonl", args.lines)
        print(f"input: {args.lines:,} requests, {size / MiB:.1f} MiB", flush=True)
        for run in range(args.runs):
            command = [sys.executable, __file__, "--lines", str(args.lines), "--batch-lines", str(args.batch_lines)]
            command += ["--poll-interval", str(args.poll_interval), "--one-run", str(run), str(work)]
            child = subprocess.run(command, capture_output=True, text=True, check=False)
            figures = [line for line in child.stdout.splitlines() if line.startswith('{"run"')]
            if child.returncode != 0 or not figures:
                print(child.stdout[-4000:], child.stderr[-4000:], file=sys.stderr)
                return 2
            print(figures[-1], flush=True)
            runs.append(json.loads(figures[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {key: statistics.median(r[key] for r in runs) for key in ("wall_s", "batches", "rss_growth_mib")}
    verdict = "ok" if median["rss_growth_mib"] <= 128 else "OVER the 128 MiB goal"
    print(
        f"median of {len(runs)}: {args.lines:,} requests in {median['wall_s']:.1f}s, {median['batches']:.0f} batches, "
        f"client RSS growth {median['rss_growth_mib']:.1f} MiB ({verdict})",
        flush=True,
    )
    return 0 if median["rss_growth_mib"] <= 128 else 1


if __name__ == "__main__":
    sys.exit(main())
