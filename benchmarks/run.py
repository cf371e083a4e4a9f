"""The benchmark of issues 6 and 7: ``make bench`` or ``python benchmarks/run.py [options]``.

Prints a Markdown table: medians of ``--runs`` runs, each client in a fresh process, against the
loopback sink (tests/support/sink.py, isolates the client's cost) and the emulator (in its own
process), with ratios against curl measured in the same run and PASS/MISS next to each target.
Small sizes by default; the real run is ``--size 512MiB --multipart-size 2GiB``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import imports, transfers, triggerer
from benchmarks.common import (
    MiB,
    Row,
    emulator,
    fmt_size,
    http_json,
    make_file,
    parse_size,
    sink,
    table,
    verdict,
)

SECTIONS = {
    "upload": "1. uploads: hook, curl -F, SDK files.create (sink and emulator)",
    "download": "2. downloads: hook, curl -o, SDK content() and streaming (sink and emulator)",
    "memory": "3. hook RSS growth at each --memory-sizes (sink)",
    "imports": "4. import cost of the operators and sensors over airflow.sdk",
    "trigger": "5. --triggers OpenAIFileTriggers run by Airflow's TriggerRunner in one event loop (emulator)",
    "multipart": "6. Uploads API: hook in parallel parts vs the SDK's sequential helper (emulator)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="64MiB", help="file size of sections 1-2 (default 64MiB; real run 512MiB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; medians are reported (default 3)")
    parser.add_argument("--memory-sizes", default="64MiB,1GiB", help="sizes of section 3 (default 64MiB,1GiB)")
    parser.add_argument("--multipart-size", default="256MiB", help="file of section 6 (default 256MiB; real 2GiB)")
    parser.add_argument("--multipart-runs", type=int, default=None, help="runs of section 6 (default --runs)")
    parser.add_argument(
        "--part-latency",
        type=float,
        default=0.5,
        help="section 6 again with this delay (s) before each part is read, as over a real network (0: skip)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="parallel parts of the hook (default 4)")
    parser.add_argument("--import-runs", type=int, default=7, help="processes of each kind in section 4 (default 7)")
    parser.add_argument("--triggers", type=int, default=200, help="triggers in section 5 (default 200)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="trigger poll interval (default 5 s)")
    parser.add_argument(
        "--flip-after", type=float, default=None, help="section 5: files processed after (default 4 poll intervals)"
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of: {', '.join(SECTIONS)} (default all)"
    )
    parser.add_argument("--workdir", default=None, help="where the big files go (default: a temporary directory)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args


def trigger_rows(count: int, poll_interval: float, flip_after: float | None, runs: int) -> list[Row]:
    """Section 5: benchmarks/triggerer.py (Airflow's TriggerRunner running the triggers in one loop), medians."""
    flip = flip_after if flip_after is not None else 4 * poll_interval
    results = [triggerer.one_run(count, poll_interval, flip) for _ in range(runs)]

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in results)

    section = f"5. {count} triggers, poll every {poll_interval:g} s (emulator)"
    ok = all(r["statuses"] == ["success"] and r["events"] == count for r in results)
    budget = flip + poll_interval + 2.0
    p99, worst = med("lag_p99_ms"), med("lag_max_ms")
    return [
        Row(
            section,
            f"start → last event, files processed after {flip:g} s (events: {'all success' if ok else 'MISSING'})",
            f"{med('last_event_s'):.1f} s",
            "",
            f"{max(float(r['rss_growth_mib']) for r in results):.1f} MiB",
            f"≤ {budget:g} s",
            verdict(ok and med("last_event_s") <= budget),
        ),
        Row(
            section,
            f"event-loop lag p99 (p50 {med('lag_p50_ms'):.1f} ms; no-trigger control on this machine now: "
            f"p99 {med('control_lag_p99_ms'):.1f} ms, load {med('load_1min'):.1f})",
            f"{p99:.1f} ms",
            "",
            "",
            "< 10 ms",
            verdict(p99 < 10),
        ),
        Row(
            section,
            f"event-loop lag max (outside garbage collections {med('lag_max_outside_gc_ms'):.0f} ms; longest "
            f"collection {med('gc_max_pause_ms'):.0f} ms; control max {med('control_lag_max_ms'):.0f} ms)",
            f"{worst:.0f} ms",
            "",
            "",
            "< 50 ms",
            verdict(worst < 50),
        ),
        Row(
            section,
            f"requests to the API while waiting, per minute ({med('requests'):.0f} in the whole run)",
            f"{med('requests_per_minute'):.0f} / min",
            "",
            "",
            "(information)",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = parse_size(args.size)
    multipart_size = parse_size(args.multipart_size)
    memory_sizes = [parse_size(s) for s in args.memory_sizes.split(",") if s.strip()]
    multipart_runs = args.multipart_runs or args.runs
    workdir = Path(tempfile.mkdtemp(prefix="openai-files-bench-", dir=args.workdir))
    began = time.monotonic()
    rows: list[Row] = []
    try:
        source = workdir / "source.bin"
        if {"upload", "download"} & set(args.only):
            make_file(source, size)
        if {"upload", "download", "memory"} & set(args.only):
            with sink() as url:
                if "upload" in args.only:
                    rows += transfers.upload("sink", url, source, args.runs)
                if "download" in args.only:
                    rows += transfers.download("sink", url, f"file-sink-{size}", size, args.runs, workdir)
                if "memory" in args.only:
                    files = {n: make_file(workdir / f"memory-{n}.bin", n) for n in memory_sizes}
                    rows += transfers.memory(url, files, args.runs, workdir)
                    for path in files.values():
                        path.unlink()
        if {"upload", "download", "multipart"} & set(args.only):
            with emulator(workdir / "emulator") as emu:
                url = emu.base_url
                if "upload" in args.only:
                    rows += transfers.upload("emulator", url, source, args.runs, transfers.emulator_cleanup(url))
                if "download" in args.only:
                    file_id = transfers.store(url, source)
                    warm_id = transfers.store(url, make_file(workdir / "warm.bin", MiB))
                    rows += transfers.download("emulator", url, file_id, size, args.runs, workdir, warm_id)
                    http_json("DELETE", f"{url}/files/{file_id}")
                source.unlink(missing_ok=True)
                if "multipart" in args.only:
                    big = make_file(workdir / "multipart.bin", multipart_size)
                    rows += transfers.multipart(url, big, multipart_runs, args.concurrency, emu, args.part_latency)
                    big.unlink()
        if "imports" in args.only:
            rows += imports.measure(args.import_runs)
        if "trigger" in args.only:
            rows += trigger_rows(args.triggers, args.poll_interval, args.flip_after, args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(header(args, size, multipart_size, memory_sizes, multipart_runs, time.monotonic() - began))
    rows.sort(key=lambda row: int(row.section.split(".", 1)[0]))  # stable: keeps the order within a section
    print(table(rows))
    misses = sum(1 for r in rows if r.result == verdict(False))
    print(f"\n{sum(1 for r in rows if r.result)} targets checked, {misses} missed.")
    return 0


def header(
    args: argparse.Namespace, size: int, multipart_size: int, memory_sizes: list[int], mp_runs: int, took: float
) -> str:
    import psutil

    command = "python benchmarks/run.py " + " ".join(sys.argv[1:]) if sys.argv[1:] else "(defaults)"
    return "\n".join(
        [
            f"Benchmark of {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {platform.node()}: "
            f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 1024**3:.0f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}; took {took:.0f} s.",
            f"Command: `{command}`",
            f"Sections 1-2: {fmt_size(size)}, median of {args.runs} runs; section 3: "
            f"{', '.join(fmt_size(n) for n in memory_sizes)}; section 6: {fmt_size(multipart_size)}, "
            f"{mp_runs} runs, {args.concurrency} parts at a time, 64 MiB parts. Peak RSS growth: the worst run. "
            "Hook and SDK times exclude interpreter start-up, imports and a small warm-up transfer; curl's include its process start, and "
            "its RSS is its absolute peak (from /usr/bin/time).",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
