"""Measure one hook transfer in a fresh process: peak RSS growth and wall time, printed as JSON.

``python -m tests.support.memory_probe upload|download|multipart BASE_URL PATH_OR_SIZE``. After imports and a
warm-up transfer, the kernel's peak-RSS mark (VmHWM) is reset to the current RSS; growth is the peak
after the transfer minus that baseline: exact, with no sampling to miss a spike.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from tests.support.connections import export_connection

MiB = 1024 * 1024
PROBE_KEY = "sk-probe-key"  # the sink and the benchmark's emulator accept any key


def reset_peak() -> None:
    """Reset the kernel's high-water mark (VmHWM) to the current RSS, so the peak covers only what follows."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def warm_up(hook: object, mode: str, base_url: str) -> None:
    """One small transfer of the same kind first: lazy imports and first-log set-up are not the transfer's cost."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if mode == "download":
            hook.download_file(os.environ.get("PROBE_WARM_ID", f"file-sink-{MiB}"), os.path.join(tmp, "w"))  # type: ignore[attr-defined]
        else:
            small = os.path.join(tmp, "warm.bin")
            with open(small, "wb") as handle:
                handle.write(b"w" * MiB)
            hook.upload_file(small, "user_data", multipart=(mode == "multipart"))  # type: ignore[attr-defined]


def main() -> None:
    mode, base_url, target = sys.argv[1:4]
    export_connection(host=base_url, password=PROBE_KEY, extra={"max_retries": 0})
    from airflow_openai_files.hooks import OpenAIFilesHook

    hook = OpenAIFilesHook(max_concurrency=int(os.environ.get("PROBE_CONCURRENCY", "4")))
    warm_up(hook, mode, base_url)
    reset_peak()
    before = current_rss()
    started = time.perf_counter()
    if mode == "download":
        size = int(target)
        sink_id = os.environ.get("PROBE_FILE_ID", f"file-sink-{size}")
        out = os.environ["PROBE_DEST"]
        hook.download_file(sink_id, out, overwrite=True)
        result = {"bytes": os.path.getsize(out)}
    else:
        created = hook.upload_file(target, "user_data", multipart=(mode == "multipart"))
        result = {"bytes": os.path.getsize(target), "id": created.get("id")}
    elapsed = time.perf_counter() - started
    result.update(seconds=elapsed, rss_growth=peak_rss() - before, baseline_rss=before)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
