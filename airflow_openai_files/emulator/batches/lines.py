"""Writing a batch's result lines: answers of the stand-in model to ``output.jsonl`` (status 200)
or ``errors.jsonl`` (a 4xx answer, as the service files rejected requests), and the lines left when a
batch expires or is cancelled as ``batch_expired`` / ``batch_cancelled`` errors.

Lines are streamed from the input at a stored byte offset and appended to the two files after
truncating them to their recorded sizes, so a crash between the write and the row update never
duplicates a line and memory stays bounded whatever the batch's size.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_openai_files.emulator.batches.model import Answer, Usage, _digest, answer

OUTPUT_NAME, ERRORS_NAME = "output.jsonl", "errors.jsonl"
REST_MESSAGES = {
    "batch_expired": "This request could not be executed before the completion window expired.",
    "batch_cancelled": "This request was not executed because the batch was cancelled.",
}


def write_lines(
    folder: Path,
    row: sqlite3.Row,
    count: int | None,
    rest_code: str | None,
    scripted: Callable[[str], tuple[int, dict[str, Any]] | None] | None = None,
) -> dict[str, int]:
    """Answer the next ``count`` lines (``None``: all that remain), or, with ``rest_code``, write
    every remaining line as that error. ``scripted(custom_id)`` may answer a line instead of the model
    (a scripted line failure: ``(status, error body)``). Returns the batch's new counters, usage and offsets."""
    done, completed, failed = row["done"], row["completed"], row["failed"]
    tokens_in, tokens_out = row["input_tokens"], row["output_tokens"]
    total, start, duration = row["total"], row["in_progress_ts"] or 0.0, row["duration"] or 0.0
    with (
        open(folder / "input.jsonl", "rb") as source,
        open(folder / OUTPUT_NAME, "ab") as out,
        open(folder / ERRORS_NAME, "ab") as err,
    ):
        for handle, size in ((out, row["out_bytes"]), (err, row["err_bytes"])):
            handle.truncate(size)
            handle.seek(0, 2)  # tell() below must count from the truncated end
        source.seek(row["input_offset"])
        while count is None or count > 0:
            raw = source.readline()
            if not raw:
                break
            if not raw.strip():
                continue
            request = json.loads(raw)
            custom_id = request["custom_id"]
            line: dict[str, Any] = {
                "id": "batch_req_" + _digest(row["id"], custom_id)[:32],
                "custom_id": custom_id,
                "response": None,
                "error": None,
            }
            if rest_code is not None:
                line["error"] = {"code": rest_code, "message": REST_MESSAGES[rest_code]}
                failed += 1
                target = err
            else:
                created = int(start + duration * (done + 1) / max(total, 1))
                fault = scripted(custom_id) if scripted is not None else None
                if fault is not None:
                    result = Answer(fault[0], fault[1], Usage(0, 0))
                else:
                    result = answer(row["endpoint"], request["body"], f"{row['id']}/{custom_id}", created)
                line["response"] = {
                    "status_code": result.status_code,
                    "request_id": _digest("request", row["id"], custom_id)[:32],
                    "body": result.body,
                }
                tokens_in += result.usage.input_tokens
                tokens_out += result.usage.output_tokens
                if result.status_code == 200:
                    completed += 1
                    target = out
                else:
                    failed += 1
                    target = err
                done += 1
                if count is not None:
                    count -= 1
            target.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        out.flush()
        err.flush()
        offset, out_bytes, err_bytes = source.tell(), out.tell(), err.tell()
    return dict(
        done=done,
        completed=completed,
        failed=failed,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        input_offset=offset,
        out_bytes=out_bytes,
        err_bytes=err_bytes,
    )
