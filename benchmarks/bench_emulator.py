"""Benchmark of the emulator (a script, not a test): ingest and serve throughput of one large
file, and the time of one ``limit=100`` list page with many files stored.

    python benchmarks/bench_emulator.py --size 512MiB --files 100000

The emulator runs as a subprocess (``python -m airflow_openai_files.emulator``), as in the demo;
the client streams the multipart body from a generator and discards the download, so the figures
are the emulator's (plus loopback). For the listing figure the metadata rows are bulk-inserted
into the emulator's SQLite database before it starts (the contents play no part in listing).
Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airflow_openai_files.emulator import EmulatorProcess
from airflow_openai_files.emulator.core.app import open_state
from airflow_openai_files.emulator.core.config import EmulatorConfig
from airflow_openai_files.emulator.core.db import new_id
from benchmarks.common import MiB, parse_size

BOUNDARY = "benchboundary"


def multipart_body(size: int) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nvision\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.png"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    chunk = bytes(range(256)) * 4096
    left = size
    while left > 0:
        piece = chunk[: min(left, len(chunk))]
        left -= len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def bench_transfer(proc: EmulatorProcess, size: int, runs: int) -> tuple[list[float], list[float]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {proc.api_key}"
    ingest, serve = [], []
    for _ in range(runs):
        holder: dict[str, str] = {}

        def upload(holder: dict[str, str] = holder) -> None:
            response = session.post(
                f"{proc.base_url}/files",
                data=multipart_body(size),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
            response.raise_for_status()
            holder["id"] = response.json()["id"]

        ingest.append(timed(upload))

        def download(holder: dict[str, str] = holder) -> None:
            got = 0
            with session.get(f"{proc.base_url}/files/{holder['id']}/content", stream=True) as response:
                response.raise_for_status()
                for chunk in response.iter_content(MiB):
                    got += len(chunk)
            assert got == size, (got, size)

        serve.append(timed(download))
        session.delete(f"{proc.base_url}/files/{holder['id']}").raise_for_status()
    return ingest, serve


def populate(data_dir: Path, count: int) -> None:
    open_state(Path(data_dir), EmulatorConfig()).close()  # creates the schema
    now = time.time()
    rows = [
        (new_id("file-"), 10, int(now), now, f"f{i}.txt", "batch" if i % 10 == 0 else "user_data", None, "none")
        for i in range(count)
    ]
    with sqlite3.connect(data_dir / "emulator.sqlite3") as db:
        db.executemany(
            "INSERT INTO files (id, bytes, created_at, created_ts, filename, purpose, expires_at, check_state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def bench_list(proc: EmulatorProcess, runs: int) -> dict[str, list[float]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {proc.api_key}"
    url = f"{proc.base_url}/files"
    middle = session.get(url, params={"limit": 5000}).json()["data"][-1]["id"]
    cases = {
        "first page (desc)": {"limit": 100},
        "page after a cursor 5,000 deep": {"limit": 100, "after": middle},
        "first page, purpose=batch": {"limit": 100, "purpose": "batch"},
    }
    results: dict[str, list[float]] = {}
    for name, params in cases.items():
        session.get(url, params=params).raise_for_status()  # warm
        times = []
        for _ in range(runs):
            times.append(timed(lambda params=params: session.get(url, params=params).raise_for_status()))
        results[name] = times
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=64 * MiB, help="file size (default 64MiB)")
    parser.add_argument("--files", type=int, default=10_000, help="files stored for the list figure")
    parser.add_argument("--runs", type=int, default=3, help="transfer runs (median reported)")
    parser.add_argument("--list-runs", type=int, default=25, help="list requests per case (median)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
        transfer_dir, list_dir = Path(tmp) / "transfer", Path(tmp) / "list"
        with EmulatorProcess(data_dir=transfer_dir, max_file_bytes=max(args.size, 512 * MiB)) as proc:
            startup = proc.startup_seconds or 0.0
            ingest, serve = bench_transfer(proc, args.size, args.runs)
        list_dir.mkdir()
        began = time.perf_counter()
        populate(list_dir, args.files)
        populate_s = time.perf_counter() - began
        with EmulatorProcess(data_dir=list_dir) as proc:
            listing = bench_list(proc, args.list_runs)

    size_mib = args.size / MiB
    print(f"## OpenAI Files emulator benchmark ({size_mib:g} MiB file, {args.files:,} files stored)\n")
    print("| measure | median | runs |")
    print("|---|---|---|")
    print(f"| CLI start-up (to ready line) | {startup * 1000:.0f} ms | 1 |")
    for name, times in (("ingest (POST /files)", ingest), ("serve (GET /files/{id}/content)", serve)):
        median = statistics.median(times)
        print(f"| {name}, {size_mib:g} MiB | {size_mib / median:.0f} MiB/s ({median:.2f} s) | {len(times)} |")
    for name, times in listing.items():
        print(f"| list limit=100, {name} | {statistics.median(times) * 1000:.1f} ms | {len(times)} |")
    print(f"\n(metadata rows inserted in {populate_s:.1f} s; Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
