"""File helpers shared by the tests: content digests and JSONL builders."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.task_helpers import batch_lines, fine_tune_lines

__all__ = ["batch_lines", "fine_tune_lines", "sha256"]


def sha256(data: bytes | Path) -> str:
    """The hex sha256 of bytes, or of a file's content read in 1 MiB blocks."""
    if isinstance(data, Path):
        digest = hashlib.sha256()
        with open(data, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()
