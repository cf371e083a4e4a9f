"""Helpers for the fine-tuning emulator tests: an SDK client whose every fine-tuning answer is
validated against the schemas in ``tests/data/files-openapi.yaml``, and JSONL builders per method."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai

from airflow_openai_files.emulator import Emulator, EmulatorProcess
from tests.openapi_schemas import validate

#: Slow phases so that nothing moves unless a test moves the emulator's clock.
SLOW = {"fine_tuning_validate_seconds": 10, "fine_tuning_queue_seconds": 10, "fine_tuning_train_seconds": 100}
CHECKED: list[str] = []


def schema_for(method: str, path: str, status: int) -> str | None:
    if status >= 400:
        return "ErrorResponse"
    tail = path.split("/v1/", 1)[-1].strip("/").split("/")
    if tail[:2] != ["fine_tuning", "jobs"]:
        return None
    if len(tail) == 2:
        return "ListPaginatedFineTuningJobsResponse" if method == "GET" else "FineTuningJob"
    if len(tail) == 3 or tail[3] in ("cancel", "pause", "resume"):
        return "FineTuningJob"
    return {"events": "ListFineTuningJobEventsResponse", "checkpoints": "ListFineTuningJobCheckpointsResponse"}[tail[3]]


def _hook(response: httpx2.Response) -> None:
    if "application/json" not in response.headers.get("content-type", ""):
        return
    response.read()
    name = schema_for(response.request.method, response.request.url.path, response.status_code)
    if name is not None:
        validate(name, json.loads(response.content))
        CHECKED.append(name)


@contextmanager
def ft_client(emulator: Emulator | EmulatorProcess) -> Iterator[openai.OpenAI]:
    http_client = httpx2.Client(event_hooks={"response": [_hook]})
    with openai.OpenAI(
        base_url=emulator.base_url, api_key=emulator.api_key, max_retries=0, http_client=http_client
    ) as client:
        yield client


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines)


def chat(n: int = 10) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(n)
    ]


def preference(n: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "input": {"messages": [{"role": "user", "content": f"question {i}"}]},
            "preferred_output": [{"role": "assistant", "content": f"good {i}"}],
            "non_preferred_output": [{"role": "assistant", "content": f"bad {i}"}],
        }
        for i in range(n)
    ]


def reinforcement(n: int = 10) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}], "reference_answer": str(2 * i)}
        for i in range(n)
    ]


GRADER = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.reference_answer}}",
    "operation": "eq",
}


def upload(client: openai.OpenAI, lines: list[Any], purpose: str = "fine-tune", name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, jsonl(lines)), purpose=purpose).id  # type: ignore[arg-type]
