"""One client transfer in a fresh process, measured like tests.support.memory_probe; prints JSON.

``python -m benchmarks.probe MODE BASE_URL TARGET [DEST]``:

- ``sdk-upload PATH``: ``client.files.create(file=open(PATH, 'rb'), purpose='user_data')``
- ``sdk-content ID DEST``: ``client.files.content(ID).write_to_file(DEST)`` (whole body in memory)
- ``sdk-stream ID DEST``: ``client.files.with_streaming_response.content(ID)``, ``iter_bytes`` to DEST
- ``sdk-chunked PATH``: ``client.uploads.upload_file_chunked(file=Path(PATH), ...)`` (64 MiB parts, in turn)
- ``sdk-chunked-md5 PATH``: the same with ``md5=``, computed from the file first (inside the timing), so the
  server checks the bytes as it does for the hook
- ``hook-post PATH``: the hook's streamed ``POST /files`` body at any size (the 512 MiB API cap is checked
  before it in ``upload_file``; the sink accepts more, which shows the memory bound does not depend on size)

Wall time excludes interpreter start-up, imports and a small warm-up transfer of the same kind; RSS growth
is the peak (VmHWM, reset after the warm-up) minus the RSS before the transfer, as in the memory probe.
Downloads warm up on ``PROBE_WARM_ID`` (default ``file-sink-1048576``, which only the sink has).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.connections import export_connection
from tests.support.memory_probe import PROBE_KEY, MiB, current_rss, peak_rss, reset_peak, warm_up


def sdk_warm_up(client: Any, mode: str) -> None:
    """One small transfer of the same kind first, as the memory probe does for the hook."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp, "warm.bin")
        if mode in ("sdk-content", "sdk-stream"):
            warm_id = os.environ.get("PROBE_WARM_ID", f"file-sink-{MiB}")
            client.files.content(warm_id).write_to_file(small)
            with client.files.with_streaming_response.content(warm_id) as response:
                for _ in response.iter_bytes(MiB):
                    pass
            return
        small.write_bytes(b"w" * MiB)
        if mode.startswith("sdk-chunked"):
            client.uploads.upload_file_chunked(file=small, mime_type="application/octet-stream", purpose="user_data")
        else:
            with open(small, "rb") as handle:
                client.files.create(file=handle, purpose="user_data")


def sdk_transfer(mode: str, base_url: str, target: str, dest: str | None) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-probe-key", max_retries=0, timeout=1800)
    sdk_warm_up(client, mode)
    reset_peak()
    before = current_rss()
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if mode == "sdk-upload":
        with open(target, "rb") as handle:
            created = client.files.create(file=handle, purpose="user_data")
        result["id"] = created.id
    elif mode == "sdk-content":
        assert dest is not None
        client.files.content(target).write_to_file(dest)
    elif mode == "sdk-stream":
        assert dest is not None
        with client.files.with_streaming_response.content(target) as response, open(dest, "wb") as out:
            for chunk in response.iter_bytes(MiB):
                out.write(chunk)
    elif mode in ("sdk-chunked", "sdk-chunked-md5"):
        extra: dict[str, Any] = {}
        if mode == "sdk-chunked-md5":
            digest = hashlib.md5(usedforsecurity=False)
            with open(target, "rb") as handle:
                while block := handle.read(MiB):
                    digest.update(block)
            extra["md5"] = digest.hexdigest()
        upload = client.uploads.upload_file_chunked(
            file=Path(target), mime_type="application/octet-stream", purpose="user_data", **extra
        )
        result["id"] = upload.file.id if upload.file else None
        result["status"] = upload.status
    else:
        raise SystemExit(f"unknown mode {mode}")
    result.update(seconds=time.perf_counter() - started, rss_growth=peak_rss() - before, baseline_rss=before)
    return result


def hook_post(base_url: str, target: str) -> dict[str, Any]:
    export_connection(host=base_url, password=PROBE_KEY, extra={"max_retries": 0})
    from airflow_openai_files.hooks import OpenAIFilesHook
    from airflow_openai_files.transfer.sources import resolve_source
    from airflow_openai_files.transfer.uploads import PlainUpload, UploadJob

    hook = OpenAIFilesHook()
    warm_up(hook, "hook-post", base_url)
    reset_peak()
    before = current_rss()
    started = time.perf_counter()
    source = resolve_source(target)
    created = PlainUpload(hook._transport, UploadJob(source, "sink.bin", "user_data"), hook.log).run()
    source.close()
    return {
        "id": created.get("id"),
        "seconds": time.perf_counter() - started,
        "rss_growth": peak_rss() - before,
        "baseline_rss": before,
    }


def main() -> None:
    mode, base_url, target = sys.argv[1:4]
    dest = sys.argv[4] if len(sys.argv) > 4 else None
    result = hook_post(base_url, target) if mode == "hook-post" else sdk_transfer(mode, base_url, target, dest)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
