"""Measure one hook transfer in a fresh process: peak RSS growth and wall time, printed as JSON.

``python -m tests.support.memory_probe upload|download|multipart BASE_URL PATH_OR_SIZE``. The baseline is the
current RSS after imports and a warm-up request; growth is the lifetime peak minus it, so a transient
peak from start-up can only overstate the transfer's cost, never hide it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

MiB = 1024 * 1024


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    mode, base_url, target = sys.argv[1:4]
    os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = json.dumps(
        {"conn_type": "openai_files", "host": base_url, "password": "sk-probe-key", "extra": {"max_retries": 0}}
    )
    from airflow_openai_files.hooks import OpenAIFilesHook

    hook = OpenAIFilesHook(max_concurrency=int(os.environ.get("PROBE_CONCURRENCY", "4")))
    hook.test_connection()  # warm up: connection, imports on first use
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
