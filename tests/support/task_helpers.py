"""Builders shared by the tests: JSONL content (fine-tune examples, batch requests) and a minimal task context."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

RUN_ID = "manual__2024-05-17T00:00:00+00:00"


def jsonl(rows: Iterable[Any]) -> bytes:
    """JSON Lines: each row (an object, or bytes taken as they are, e.g. a broken line) and a newline."""
    return b"".join((row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows)


def chat_example(i: int | str, *, system: bool = True) -> dict[str, Any]:
    """One supervised fine-tuning example (chat format)."""
    messages = [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]
    if system:
        messages.insert(0, {"role": "system", "content": "You are a helpful support agent."})
    return {"messages": messages}


def batch_request(custom_id: str, content: str = "Hi") -> dict[str, Any]:
    """One line of a batch input file (``/v1/chat/completions``)."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
    }


def fine_tune_lines(count: int = 12, tag: str = "", *, system: bool = True) -> bytes:
    """A valid fine-tune file of ``count`` examples (the service wants at least 10)."""
    return jsonl(chat_example(f"{tag}{i}", system=system) for i in range(count))


def batch_lines(count: int = 3, prefix: str = "req-") -> bytes:
    """A valid batch input of ``count`` requests, custom ids ``<prefix>0``, ``<prefix>1``, ..."""
    return jsonl(batch_request(f"{prefix}{i}", f"Hi {i}") for i in range(count))


def make_context(try_number: int = 1, run_start: datetime | float | None = None, **extra: Any) -> dict[str, Any]:
    """The parts of a task context the operators read, plus values for templates.

    ``run_start`` (a datetime or a POSIX timestamp; now by default) is when the DAG run started: on a
    retry the upload operator looks no further back for a file of an earlier try.
    """
    if run_start is None:
        run_start = datetime.now(timezone.utc)
    elif not isinstance(run_start, datetime):
        run_start = datetime.fromtimestamp(run_start, tz=timezone.utc)
    context: dict[str, Any] = {
        "ti": SimpleNamespace(try_number=try_number, task_id="t", dag_id="d", run_id=RUN_ID, map_index=-1),
        "dag_run": SimpleNamespace(start_date=run_start, queued_at=run_start, run_id=RUN_ID),
        "run_id": RUN_ID,
        "ds": "2024-05-17",
        "ds_nodash": "20240517",
        "params": {},
    }
    context.update(extra)
    return context
