"""File helpers shared by the tests: content digests and JSONL builders."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.task_helpers import batch_lines, batch_request, chat_example, fine_tune_lines, jsonl

__all__ = ["batch_lines", "batch_request", "chat_example", "fine_tune_lines", "jsonl", "sha256"]


def sha256(data: bytes | Path) -> str:
    """The hex sha256 of bytes, or of a file's content read in 1 MiB blocks."""
    if isinstance(data, Path):
        digest = hashlib.sha256()
        with open(data, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()
