"""Fixtures for the operator tests: ``memory://`` storage and a valid fine-tune file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.task_helpers import fine_tune_lines


@pytest.fixture
def memory_fs() -> Any:
    """``memory://`` as an ObjectStoragePath scheme (registered explicitly), emptied after the test."""
    import fsspec
    from airflow.sdk.io.store import attach

    fs = fsspec.filesystem("memory")
    attach(protocol="memory", fs=fs)
    yield fs
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")


@pytest.fixture
def fine_tune_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(fine_tune_lines())
    return path
