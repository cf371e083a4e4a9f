"""Fixtures for the operator tests: a valid fine-tune file and a valid batch input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.task_helpers import batch_lines, fine_tune_lines


@pytest.fixture
def fine_tune_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(fine_tune_lines())
    return path


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    """A batch input: a purpose whose content the service lets a client download."""
    path = tmp_path / "requests.jsonl"
    path.write_bytes(batch_lines(5))
    return path
