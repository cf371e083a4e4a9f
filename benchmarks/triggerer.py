"""The triggerer benchmark (issue 23): many deferred file sensors' triggers in one event loop, as Airflow runs them.

``python benchmarks/triggerer.py [--triggers 1000] [--runs 3] [--poll-interval 5] [--flip-after 20]``

Each run starts the emulator in its own process (its work must not count as the triggerer's loop lag), uploads
``--triggers`` small files that stay ``uploaded`` (a huge processing delay), and starts a probe process that
plays the triggerer: every trigger is serialized and re-created from its classpath and kwargs, then run by
Airflow's own ``TriggerRunner.run_trigger`` as one task of one event loop, the way
``airflow.jobs.triggerer_job_runner.TriggerRunner.create_triggers`` does. Next to them a ticker sleeps 10 ms
at a time and records how late it wakes (the event-loop lag every other trigger of that triggerer would suffer).
``--flip-after`` seconds after the triggers start, the emulator's clock moves past the processing delay: every
file is ``processed`` from that instant, and every trigger must send its one ``success`` event within a poll
interval. The emulator counts the API requests it answered (``GET /_emulator/requests/count``).

Printed: per run and the median of runs, lag p50 / p99 / max (whole run, from the first trigger's start to the
last event), requests sent, requests per minute while waiting, peak RSS growth of the probe (the kernel's
high-water mark, reset after imports), time from start to the last event, and the machine's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

TICK = 0.01
PROCESSING_DELAY = 1_000_000.0  # files stay 'uploaded' until the emulator's clock is advanced past it
API_KEY = "sk-bench-triggerer"
CONN_ID = "openai_files_default"


# -- the probe (a fresh process playing the triggerer) ----------------------------------------------------------


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _admin(url: str, method: str = "GET", payload: Any = None) -> Any:
    import urllib.request

    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def _probe(base_url: str, ids: list[str], poll_interval: float, flip_after: float) -> dict[str, Any]:
    import gc

    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from airflow_openai_files.triggers import OpenAIFileTrigger

    admin = base_url.rsplit("/v1", 1)[0] + "/_emulator"
    runner = TriggerRunner()
    event_times: list[float] = []

    class TimedEvents(list[Any]):
        """``runner.events``: the triggerer's outbound queue, stamped as each event is queued."""

        def append(self, item: Any) -> None:
            event_times.append(time.monotonic())
            super().append(item)

    runner.events = TimedEvents()  # type: ignore[assignment]
    lags: list[float] = []
    stamps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            lags.append(now - before - TICK)
            stamps.append(now)

    # What a triggerer restart does: the trigger comes back from its serialized classpath and kwargs.
    classpath, kwargs = OpenAIFileTrigger("file-control", poll_interval=poll_interval, timeout=900).serialize()
    trigger_class = runner.get_trigger_by_classpath(classpath)

    requests_before = (await asyncio.to_thread(_admin, f"{admin}/requests/count"))["count"]
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak-RSS mark: growth counts from here
    rss_before = _rss()
    collections: list[tuple[float, float, int]] = []  # (start, end, generation) of each garbage collection
    gc_began = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_began[0] = time.monotonic()
        else:
            collections.append((gc_began[0], time.monotonic(), info["generation"]))

    gc.callbacks.append(on_gc)
    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    for index, file_id in enumerate(ids):
        trigger = trigger_class(**{**kwargs, "file_id": file_id})
        trigger.trigger_id = index
        runner.triggers[index] = {
            "task": asyncio.create_task(runner.run_trigger(index, trigger), name=f"bench {index}"),
            "is_watcher": False,
            "name": f"bench/{file_id} (ID {index})",
            "events": 0,
        }
        await asyncio.sleep(0)  # as create_triggers does between two triggers
    # The steady-state request rate: from one poll interval after the start (every trigger has polled once)
    # to the flip.
    await asyncio.sleep(max(0.0, started + poll_interval - time.monotonic()))
    window_start = (time.monotonic(), (await asyncio.to_thread(_admin, f"{admin}/requests/count"))["count"])
    await asyncio.sleep(max(0.0, started + flip_after - time.monotonic()))
    window_end = (time.monotonic(), (await asyncio.to_thread(_admin, f"{admin}/requests/count"))["count"])
    flip = time.monotonic()
    await asyncio.to_thread(_admin, f"{admin}/clock", "POST", {"advance": 2 * PROCESSING_DELAY})
    tasks = [details["task"] for details in runner.triggers.values()]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=poll_interval * 3 + 300)
    if not tasks:  # the control run: wait as long as the triggers would have
        await asyncio.sleep(poll_interval)
    ended = time.monotonic()
    stop.set()
    await tick_task
    gc.callbacks.remove(on_gc)

    def during_gc(at: float, lag: float) -> bool:
        began = at - lag - TICK
        return any(start < at and end > began for start, end, _ in collections)

    outside_gc = [lag for lag, at in zip(lags, stamps, strict=True) if not during_gc(at, lag)]
    requests_after = (await asyncio.to_thread(_admin, f"{admin}/requests/count"))["count"]
    # Airflow 3.2+ queues a message with ``.event``; 3.1 a ``(trigger_id, event)`` tuple.
    events = [entry[1] if isinstance(entry, tuple) else entry.event for entry in runner.events]
    statuses = sorted({event.payload["status"] for event in events})
    per_minute = (window_end[1] - window_start[1]) / max(1e-9, window_end[0] - window_start[0]) * 60
    return {
        "triggers": len(ids),
        "events": len(runner.events),
        "statuses": statuses,
        "lag_p50_ms": _percentile(lags, 0.50) * 1000,
        "lag_p99_ms": _percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags, default=0.0) * 1000,
        "ticks": len(lags),
        "lag_max_outside_gc_ms": max(outside_gc, default=0.0) * 1000,
        "gc_full_collections": sum(1 for start, _, gen in collections if gen == 2 and start >= started),
        "gc_max_pause_ms": max((end - start for start, end, _ in collections if start >= started), default=0.0) * 1000,
        "gc_objects": len(gc.get_objects()),
        "worst": sorted(
            ((round(lag * 1000, 1), round(at - started, 2)) for lag, at in zip(lags, stamps, strict=True)), reverse=True
        )[:8],
        "requests": requests_after - requests_before,
        "requests_per_minute": per_minute,
        "rss_growth_mib": (_peak_rss() - rss_before) / 2**20,
        "last_event_s": max(event_times, default=ended) - started,
        "flip_to_last_event_s": max(event_times, default=ended) - flip,
    }


def probe_main(base_url: str, ids_file: str, poll_interval: float, flip_after: float) -> None:
    import gc
    import logging

    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "openai_files", "host": base_url, "password": API_KEY, "extra": {"max_retries": 3}}
    )
    logging.getLogger("airflow_openai_files").setLevel(logging.INFO)
    ids = json.loads(Path(ids_file).read_text())
    gc.collect()
    if os.environ.get("BENCH_GC_FREEZE"):  # what a triggerer could do after start-up (Airflow's choice, not ours)
        gc.freeze()
    # BENCH_SLOW_MS=<ms>: name each loop callback that held the loop longer than that (in the JSON), to find stalls.
    slow_ms = float(os.environ.get("BENCH_SLOW_MS") or 0)
    slow: list[tuple[float, str]] = []
    if slow_ms:
        run_handle = asyncio.events.Handle._run

        def where(task: Any) -> str:
            """The innermost frame a (pure-Python) task's coroutine chain is suspended at."""
            coro, place = getattr(task, "_coro", None), "?"
            while coro is not None:
                frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
                if frame is not None:
                    place = f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
                coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
            return place

        def timed(handle: asyncio.events.Handle) -> None:
            task = getattr(getattr(handle, "_callback", None), "__self__", None)
            before = where(task) if isinstance(task, asyncio.tasks._PyTask) else ""  # type: ignore[attr-defined]
            began = time.perf_counter()
            run_handle(handle)
            took = time.perf_counter() - began
            if took * 1000 > slow_ms:
                after = where(task) if before else ""
                label = f"{task.get_name()}: {before} -> {after}" if task and before else repr(handle)[:200]
                slow.append((took, label))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
        # Pure-Python tasks: their step callbacks name the task (the C ones do not).
        asyncio.Task = asyncio.tasks.Task = asyncio.tasks._PyTask  # type: ignore[attr-defined,misc]
    result = asyncio.run(_probe(base_url, ids, poll_interval, flip_after))
    if slow_ms:
        result["slow_callbacks"] = [f"{took * 1000:.0f} ms {what}" for took, what in sorted(slow, reverse=True)[:40]]
    print(json.dumps(result), flush=True)


# -- the orchestrator ------------------------------------------------------------------------------------------


def _upload(base_url: str, count: int) -> list[str]:
    from airflow_openai_files.emulator.runner.process import EmulatorProcess  # noqa: F401  (same venv check)

    def one(index: int) -> str:
        request_body = b"x" * 64
        boundary = "benchboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t-{index}.bin"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + request_body
            + f"\r\n--{boundary}--\r\n".encode()
        )
        import urllib.request

        request = urllib.request.Request(
            f"{base_url}/files",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            created = json.loads(response.read())
        if created.get("status") != "uploaded":
            raise RuntimeError(f"expected a file still 'uploaded' (processing delay), got {created}")
        return str(created["id"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def one_run(count: int, poll_interval: float, flip_after: float) -> dict[str, Any]:
    from airflow_openai_files.emulator import EmulatorProcess

    with (
        tempfile.TemporaryDirectory(prefix="bench-triggerer-") as tmp,
        EmulatorProcess(data_dir=Path(tmp) / "emulator", api_key=API_KEY, processing_delay=PROCESSING_DELAY) as emu,
    ):
        ids = _upload(emu.base_url, count)
        ids_file = Path(tmp) / "ids.json"
        ids_file.write_text(json.dumps(ids))
        result = _run_probe(emu.base_url, ids_file, poll_interval, flip_after)
        # The control: the same probe with no trigger, right after, on the same machine: the lag an empty event
        # loop sees from the machine's load alone (other processes taking the CPUs).
        ids_file.write_text("[]")
        control = _run_probe(emu.base_url, ids_file, poll_interval, flip_after)
        for key in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms"):
            result[f"control_{key}"] = control[key]
        return result


def _run_probe(base_url: str, ids_file: Path, poll_interval: float, flip_after: float) -> dict[str, Any]:
    load = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, __file__, "--probe", base_url, str(ids_file), str(poll_interval), str(flip_after)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO), AIRFLOW__CORE__LOAD_EXAMPLES="False"),
        capture_output=True,
        text=True,
        timeout=flip_after + poll_interval * 3 + 600,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"probe failed ({done.returncode}):\n{done.stderr[-3000:]}\n{done.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["load_1min"] = (load + os.getloadavg()[0]) / 2
    return result


FIGURES = (
    ("lag_p50_ms", "lag p50 (ms)", "{:.1f}"),
    ("lag_p99_ms", "lag p99 (ms)", "{:.1f}"),
    ("lag_max_ms", "lag max (ms)", "{:.0f}"),
    ("lag_max_outside_gc_ms", "lag max outside garbage collections (ms)", "{:.0f}"),
    ("gc_max_pause_ms", "longest garbage collection (ms)", "{:.0f}"),
    ("gc_full_collections", "full collections", "{:.0f}"),
    ("control_lag_p99_ms", "control, no trigger: lag p99 (ms)", "{:.1f}"),
    ("control_lag_max_ms", "control, no trigger: lag max (ms)", "{:.0f}"),
    ("requests", "requests sent", "{:.0f}"),
    ("requests_per_minute", "requests / min while waiting", "{:.0f}"),
    ("rss_growth_mib", "RSS growth (MiB)", "{:.1f}"),
    ("last_event_s", "start -> last event (s)", "{:.1f}"),
    ("load_1min", "load average (1 min)", "{:.1f}"),
)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.triggers} OpenAIFileTriggers in one event loop (Airflow's TriggerRunner.run_trigger), poll every "
        f"{args.poll_interval:g} s, files processed {args.flip_after:g} s after the start; {len(results)} run(s) "
        f"on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "",
        "| Figure | " + " | ".join(f"run {i + 1}" for i in range(len(results))) + " | median | target |",
        "| --- | " + " | ".join("---:" for _ in results) + " | ---: | --- |",
    ]
    budget = args.flip_after + args.poll_interval + 2
    targets = {"lag_p99_ms": "< 10", "lag_max_ms": "< 50", "last_event_s": f"<= {budget:g}"}
    for key, label, fmt in FIGURES:
        values = [float(r[key]) for r in results]
        cells = " | ".join(fmt.format(v) for v in values)
        lines.append(f"| {label} | {cells} | {fmt.format(statistics.median(values))} | {targets.get(key, '')} |")
    events = [f"{r['events']} events ({', '.join(r['statuses'])})" for r in results]
    lines += ["", "Events: " + "; ".join(events)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=100, help="triggers in the loop (default 100; issue: 1000)")
    parser.add_argument("--runs", type=int, default=1, help="runs; medians are reported (default 1)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="trigger poll interval (default 5 s)")
    parser.add_argument(
        "--flip-after", type=float, default=None, help="files processed after (default 4 poll intervals: 20 s)"
    )
    parser.add_argument("--json", action="store_true", help="print each run's JSON too")
    args = parser.parse_args(argv)
    if args.flip_after is None:
        args.flip_after = 4 * args.poll_interval
    results = []
    for _ in range(args.runs):
        result = one_run(args.triggers, args.poll_interval, args.flip_after)
        if args.json:
            print(json.dumps(result), flush=True)
        results.append(result)
    print(report(results, args))
    bad = [r for r in results if r["statuses"] != ["success"] or r["events"] != args.triggers]
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        probe_main(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(main())
