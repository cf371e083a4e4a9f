"""Benchmark: ``OpenAIVectorStoreSyncOperator`` syncing 5,000 small files into the emulator.

``python benchmarks/vector_store_sync.py [--files 5000] [--runs 3] [--size 2048]``

Each run is a fresh client process (the emulator runs in its own process, so its memory is not counted):
after imports and a warm-up sync of a few files, the kernel's peak-RSS mark (VmHWM) is reset; the figure
is the peak after the sync minus that baseline (exact, no sampling). Measured per run: the first sync (every
file uploaded and attached through file batches of 2,000, indexing waited for), and a second sync with
nothing changed (plan only). Prints every run and the medians; the goal is RSS growth <= 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MiB = 1024 * 1024
GOAL_MIB = 64
KEY = "sk-bench-vector-stores"


def make_files(root: Path, count: int, size: int) -> None:
    for index in range(count):
        folder = root / f"section{index % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        words = f"document {index} about topic {index % 97} and vector store sync benchmark. "
        body = (words * (size // len(words) + 1))[:size]
        (folder / f"doc{index:05d}.md").write_text(body)


def probe(base_url: str, source: str, name: str) -> dict[str, float]:
    """In a fresh process: warm up, reset the peak, sync, measure; then a no-change sync."""
    from tests.support.connections import export_connection
    from tests.support.memory_probe import current_rss, peak_rss, reset_peak

    export_connection(host=base_url, password=KEY, extra={"max_retries": 2})
    from airflow_openai_files.operators import OpenAIVectorStoreSyncOperator

    def sync(src: str, store: str) -> dict[str, object]:
        operator = OpenAIVectorStoreSyncOperator(
            task_id="bench", source=src, vector_store_name=store, poll_interval=0.2, timeout=3600, deferrable=False
        )
        result: dict[str, object] = operator.execute({})
        return result

    with tempfile.TemporaryDirectory() as warm:
        make_files(Path(warm), 5, 256)
        sync(warm, f"{name}-warm-up")
    reset_peak()
    baseline = current_rss()
    started = time.monotonic()
    first = sync(source, name)
    first_seconds = time.monotonic() - started
    growth = peak_rss() - baseline
    started = time.monotonic()
    second = sync(source, name)
    second_seconds = time.monotonic() - started
    assert second["unchanged"] == first["added"] and second["bytes"] == 0, second
    return {
        "files": float(first["added"]),  # type: ignore[arg-type]
        "bytes": float(first["bytes"]),  # type: ignore[arg-type]
        "first_sync_seconds": first_seconds,
        "no_change_sync_seconds": second_seconds,
        "rss_growth_mib": growth / MiB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size", type=int, default=2048, help="bytes per file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probe", nargs=3, metavar=("BASE_URL", "SOURCE", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print("RESULT " + json.dumps(probe(*args.probe)))
        return 0

    from airflow_openai_files.emulator import EmulatorProcess

    results = []
    with tempfile.TemporaryDirectory(prefix="vs-bench-") as tmp:
        source = Path(tmp) / "docs"
        make_files(source, args.files, args.size)
        with EmulatorProcess(data_dir=Path(tmp) / "emu", api_key=KEY, vector_store_file_seconds=0.5) as emulator:
            for run in range(args.runs):
                done = subprocess.run(
                    [sys.executable, __file__, "--probe", emulator.base_url, str(source), f"bench-{run}"],
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                    env={**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"},
                    timeout=3600,
                )
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if done.returncode != 0 or not lines:
                    print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
                    return 1
                result = json.loads(lines[-1][len("RESULT ") :])
                results.append(result)
                print(
                    f"run {run + 1}: {int(result['files'])} files, {result['bytes'] / MiB:.1f} MiB: first sync"
                    f" {result['first_sync_seconds']:.1f}s, no-change sync {result['no_change_sync_seconds']:.1f}s,"
                    f" client RSS growth {result['rss_growth_mib']:.1f} MiB",
                    flush=True,
                )
    med = {key: statistics.median(r[key] for r in results) for key in results[0]}
    print(
        f"median of {len(results)}: first sync {med['first_sync_seconds']:.1f}s"
        f" ({med['files'] / med['first_sync_seconds']:.0f} files/s), no-change sync"
        f" {med['no_change_sync_seconds']:.1f}s, client RSS growth {med['rss_growth_mib']:.1f} MiB"
        f" (goal <= {GOAL_MIB} MiB: {'met' if med['rss_growth_mib'] <= GOAL_MIB else 'NOT met'})"
    )
    return 0 if med["rss_growth_mib"] <= GOAL_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
