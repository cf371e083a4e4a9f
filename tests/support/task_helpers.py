"""Builders shared by the operator, sensor and DAG tests: JSONL content and a minimal task context."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any


def fine_tune_lines(count: int = 12, tag: str = "") -> bytes:
    return b"".join(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are a helpful support agent."},
                    {"role": "user", "content": f"Question {tag}{i}?"},
                    {"role": "assistant", "content": f"Answer {tag}{i}."},
                ]
            }
        ).encode()
        + b"\n"
        for i in range(count)
    )


def batch_lines(count: int = 3) -> bytes:
    return b"".join(
        json.dumps(
            {
                "custom_id": f"req-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Hi {i}"}]},
            }
        ).encode()
        + b"\n"
        for i in range(count)
    )


def make_context(try_number: int = 1, run_start: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """The parts of a task context the operators read, plus values for templates."""
    context: dict[str, Any] = {
        "ti": SimpleNamespace(try_number=try_number, task_id="t"),
        "dag_run": SimpleNamespace(start_date=run_start or datetime.now(timezone.utc), queued_at=None),
        "ds": "2024-05-17",
        "ds_nodash": "20240517",
        "params": {},
    }
    context.update(extra)
    return context
