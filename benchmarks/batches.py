"""The Batch API benchmark of issue 13: printed figures, not timed tests.

``python benchmarks/batches.py [--lines 50000] [--output-size 200MB]`` prints a Markdown table:

1. A ``--lines`` batch end to end on the emulator (in its own process): ``OpenAIBatchOperator`` in a
   fresh client process validates and uploads the input, creates the batch, polls it on the worker,
   and lands the output; then ``join_by_custom_id`` joins all results to the input. Time and the
   client's peak RSS growth (VmHWM, reset after imports and a warm-up; target: under 64 MiB).
2. A batch whose output file is about ``--output-size`` (embeddings of 3072 dimensions), landed on disk
   by the hook (``download_file``, fresh process) against curl's time for the same download in the
   same run.

Inside the client probe (``python -m benchmarks.batches probe MODE ...``) timing excludes the
interpreter start-up and imports, as in ``benchmarks/probe.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    API_KEY,
    MiB,
    Row,
    fmt_mib,
    parse_size,
    run_curl,
    run_probe,
    sha256_file,
    table,
    verdict,
)

RSS_LIMIT = 64 * MiB
EMBEDDING_INPUTS_PER_LINE = 8
DIMENSIONS = 3072


# -- the client probe (runs in a fresh process) -----------------------------------------------------------


def _connect(base_url: str) -> None:
    os.environ["AIRFLOW_CONN_OPENAI_FILES_DEFAULT"] = json.dumps(
        {"conn_type": "openai_files", "host": base_url, "password": API_KEY, "extra": {"timeout": 1800}}
    )


def probe(mode: str, base_url: str, *args: str) -> dict[str, Any]:
    """``batch INPUT OUTDIR`` (operator end to end, then the join) or ``download FILE_ID DEST``."""
    from tests.support.memory_probe import current_rss, peak_rss, reset_peak

    _connect(base_url)
    from airflow_openai_files.hooks import OpenAIFilesHook
    from airflow_openai_files.operators import OpenAIBatchOperator
    from airflow_openai_files.results import join_by_custom_id
    from tests.support.task_helpers import make_context

    hook = OpenAIFilesHook()
    hook.list_batches(page_size=1)  # warm-up: connection, settings, first log line
    next(iter(hook.list_files(page_size=1)), None)
    result: dict[str, Any] = {}
    baseline = current_rss()
    reset_peak()
    started = time.perf_counter()
    if mode == "batch":
        source, outdir = Path(args[0]), Path(args[1])
        op = OpenAIBatchOperator(
            task_id="bench",
            input_file=str(source),
            endpoint="/v1/chat/completions",
            output_destination=str(outdir / "output.jsonl"),
            error_destination=str(outdir / "errors.jsonl"),
            poll_interval=0.5,
            deferrable=False,
        )
        summary = op.execute(make_context())
        result["operator_seconds"] = time.perf_counter() - started
        result["operator_rss_growth"] = peak_rss() - baseline
        joined = answered = 0
        join_started = time.perf_counter()
        for _request, answer in join_by_custom_id(source, summary["output_path"], summary["error_path"]):
            joined += 1
            answered += answer is not None and answer.get("error") is None
        result.update(
            summary=summary,
            joined=joined,
            answered=answered,
            join_seconds=time.perf_counter() - join_started,
            output_bytes=(outdir / "output.jsonl").stat().st_size,
        )
    else:
        file_id, destination = args
        hook.download_file(file_id, destination, overwrite=True)
        result["output_bytes"] = Path(destination).stat().st_size
    result["seconds"] = time.perf_counter() - started
    result["rss_growth"] = peak_rss() - baseline
    return result


# -- inputs -----------------------------------------------------------------------------------------------


def chat_requests(path: Path, lines: int) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(lines):
            body = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": f"Review {i}"}]}
            handle.write(
                json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
            )
            handle.write("\n")
    return path


def embedding_requests(path: Path, output_size: int) -> Path:
    """Enough lines of ``EMBEDDING_INPUTS_PER_LINE`` 3072-dimension embeddings for ``output_size`` of output."""
    per_line = EMBEDDING_INPUTS_PER_LINE * DIMENSIONS * 9  # ~9 characters per rounded float
    lines = math.ceil(output_size / per_line)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(lines):
            body = {
                "model": "text-embedding-3-large",
                "dimensions": DIMENSIONS,
                "input": [f"document {i} part {k}" for k in range(EMBEDDING_INPUTS_PER_LINE)],
            }
            handle.write(json.dumps({"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": body}))
            handle.write("\n")
    return path


def _batch_via_hook(base_url: str, source: Path, endpoint: str) -> dict[str, Any]:
    """Create a batch in this (the runner's) process and wait for it: setup, not measured."""
    _connect(base_url)
    from airflow_openai_files.hooks import OpenAIFilesHook

    hook = OpenAIFilesHook()
    uploaded = hook.upload_file(source, "batch", validate=False)
    batch = hook.create_batch(uploaded["id"], endpoint)
    while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.5)
        batch = hook.get_batch(batch["id"])
    return batch


# -- the runner -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=50_000, help="requests in the end-to-end batch")
    parser.add_argument("--output-size", default="200MB", help="size of the output file to land (e.g. 200MB)")
    options = parser.parse_args(argv)
    output_size = parse_size(options.output_size)

    from airflow_openai_files.emulator import EmulatorProcess

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as tmp:
        work = Path(tmp)
        with EmulatorProcess(data_dir=work / "emulator", api_key=API_KEY) as emu:
            # 1. the end-to-end batch
            source = chat_requests(work / "requests.jsonl", options.lines)
            outdir = work / "landed"
            outdir.mkdir()
            end_to_end = run_probe("benchmarks.batches", "probe", "batch", emu.base_url, str(source), str(outdir))
            summary = end_to_end["summary"]
            ok = summary["status"] == "completed" and end_to_end["joined"] == options.lines
            rows.append(
                Row(
                    "Batch end to end",
                    f"{options.lines:,} requests: check, upload, create, poll, land output "
                    f"({end_to_end['output_bytes'] / MiB:.0f} MiB)",
                    f"{end_to_end['operator_seconds']:.1f} s",
                    "",
                    fmt_mib(end_to_end["operator_rss_growth"]),
                    "≤ 64 MiB",
                    verdict(ok and end_to_end["operator_rss_growth"] <= RSS_LIMIT),
                )
            )
            rows.append(
                Row(
                    "Batch end to end",
                    f"+ join_by_custom_id of {end_to_end['joined']:,} results ({end_to_end['answered']:,} answered)",
                    f"{end_to_end['join_seconds']:.1f} s",
                    "",
                    fmt_mib(end_to_end["rss_growth"]),
                    "≤ 64 MiB",
                    verdict(ok and end_to_end["rss_growth"] <= RSS_LIMIT),
                )
            )

            # 2. a large output file landed on disk, against curl
            big = _batch_via_hook(emu.base_url, embedding_requests(work / "embed.jsonl", output_size), "/v1/embeddings")
            file_id = big["output_file_id"]
            landed = work / "big_output.jsonl"
            hook_run = run_probe("benchmarks.batches", "probe", "download", emu.base_url, file_id, str(landed))
            digest = sha256_file(landed)
            landed.unlink()
            curl_dest = work / "curl_output.jsonl"
            curl = run_curl(
                [
                    "-H",
                    f"Authorization: Bearer {API_KEY}",
                    "-o",
                    str(curl_dest),
                    f"{emu.base_url}/files/{file_id}/content",
                ]
            )
            same = sha256_file(curl_dest) == digest
            rows.append(
                Row(
                    "Output download",
                    f"{hook_run['output_bytes'] / 1e6:.0f} MB batch_output file to disk (hook)",
                    f"{hook_run['seconds']:.2f} s",
                    f"{hook_run['seconds'] / curl['seconds']:.2f}x",
                    fmt_mib(hook_run["rss_growth"]),
                    "figure (vs curl), ≤ 64 MiB",
                    verdict(same and hook_run["rss_growth"] <= RSS_LIMIT),
                )
            )
            rows.append(
                Row(
                    "Output download",
                    "the same file with curl -o (whole process)",
                    f"{curl['seconds']:.2f} s",
                    "1.00x",
                    f"{fmt_mib(curl['peak_rss'])} (abs.)",
                    "",
                    "",
                )
            )
    print(table(rows))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        print(json.dumps(probe(sys.argv[2], sys.argv[3], *sys.argv[4:]), default=str))
    else:
        sys.exit(main())
