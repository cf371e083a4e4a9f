"""Builders shared by the batch tests: request lines, uploads and output readers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any, Literal

import openai

CHAT: Literal["/v1/chat/completions"] = "/v1/chat/completions"


def chat_line(i: int | str, *, model: str = "gpt-4o-mini", text: str | None = None, **extra: Any) -> dict[str, Any]:
    words = text if text is not None else f"hello number {i}"
    line = {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": words}]},
    }
    line.update(extra)
    return line


def jsonl(lines: Iterable[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


def upload(client: openai.OpenAI, lines: Iterable[Any], purpose: str = "batch") -> str:
    return client.files.create(file=("requests.jsonl", io.BytesIO(jsonl(lines))), purpose=purpose).id  # type: ignore[arg-type]


def create(client: openai.OpenAI, lines: Iterable[Any], endpoint: str = CHAT, **kwargs: Any) -> Any:
    return client.batches.create(
        input_file_id=upload(client, lines),
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **kwargs,
    )


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def by_custom_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["custom_id"]: line for line in lines}
