"""The sync operator's plan from the hashes recorded in the store: pure, no service needed."""

from __future__ import annotations

import hashlib
import logging
import time
from types import SimpleNamespace
from typing import Any

from airflow_openai_files.operators._vector_store_source import SourceFile
from airflow_openai_files.operators._vector_store_steps import (
    FALLBACK_WINDOW,
    forget_uploads,
    make_plan,
    record_uploads,
    recorded_uploads,
    retry_since,
    upload_mark,
)
from airflow_openai_files.resources.vector_stores import HASH_ATTRIBUTE, PATH_ATTRIBUTE


def source(path: str, data: bytes) -> SourceFile:
    return SourceFile(path, None, len(data), hashlib.sha256(data).hexdigest())


def stored(file_id: str, f: SourceFile, status: str = "completed", code: str | None = None) -> dict[str, Any]:
    return {
        "id": file_id,
        "status": status,
        "last_error": {"code": code, "message": "x"} if code else None,
        "attributes": {PATH_ATTRIBUTE: f.path, HASH_ATTRIBUTE: f.sha256},
    }


def test_plan_sorts_every_case() -> None:
    same, old, new, gone, empty = (
        source("same.md", b"same"),
        source("changed.md", b"old"),
        source("changed.md", b"new"),
        source("gone.md", b"gone"),
        source("empty.md", b""),
    )
    added = source("added.md", b"added")
    by_path = {
        "same.md": [stored("file-same", same), stored("file-dup", source("same.md", b"older"))],
        "changed.md": [stored("file-old", old)],
        "gone.md": [stored("file-gone", gone)],
    }
    plan = make_plan([same, new, added, empty], by_path, delete_removed=True)
    assert [f.path for f in plan.to_send] == ["changed.md", "added.md"]
    assert (plan.added, plan.unchanged, plan.removed) == (1, 1, 1)
    assert sorted(plan.replaced_old) == ["file-dup", "file-old"]  # a leftover second version goes too
    assert plan.removed_old == ["file-gone"]
    assert [f["path"] for f in plan.local_failed] == ["empty.md"]
    assert plan.attached == {"file-same", "file-dup", "file-old", "file-gone"}

    kept = make_plan([same], by_path, delete_removed=False)
    assert kept.removed_old == [] and kept.removed == 0


def test_server_errors_are_attached_again_other_failures_are_not() -> None:
    a, b = source("a.md", b"a"), source("b.md", b"b")
    by_path = {
        "a.md": [stored("file-a", a, "failed", "server_error")],
        "b.md": [stored("file-b", b, "failed", "invalid_file")],
    }
    plan = make_plan([a, b], by_path, delete_removed=True)
    assert plan.reattach == [(a, "file-a")] and plan.to_send == [] and plan.unchanged == 2


class Record:
    """A ``resume.TaskRecord`` stand-in: what an earlier try recorded, by name."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


def test_retry_since_falls_back_from_run_start_to_record_to_a_bounded_window() -> None:
    log = logging.getLogger("test")
    start = time.time() - 3600

    def context(try_number: int, run_start: float | None) -> dict[str, Any]:
        started = None if run_start is None else SimpleNamespace(timestamp=lambda: run_start)
        return {
            "ti": SimpleNamespace(try_number=try_number, dag_id="d", run_id="r", task_id="t", map_index=-1),
            "dag_run": SimpleNamespace(start_date=started, queued_at=None),
        }

    assert retry_since(context(1, start), Record(started=start - 5), log) is None  # a first try finds nothing
    assert retry_since(context(2, start), Record(started=start - 5), log) == start
    assert retry_since(context(2, None), Record(started=start - 5), log) == start - 5
    fallback = retry_since(context(2, None), Record(), log)
    assert fallback is not None and abs(fallback - (time.time() - FALLBACK_WINDOW)) < 60


def test_recorded_upload_names_stay_under_the_state_store_value_limit() -> None:
    """5,000 upload names (the benchmark's sync) round-trip through keys of at most 64 KiB each."""
    names = {f"{hashlib.sha256(str(i).encode()).hexdigest()[:16]}_document-{i:05d}.md" for i in range(5000)}
    record = Record()
    record_uploads(record, {upload_mark(name) for name in names})
    assert max(len(str(value).encode()) for value in record.values.values()) < 65535
    assert recorded_uploads(record) == {upload_mark(name) for name in names}
    record_uploads(record, recorded_uploads(record) | {upload_mark("0123456789abcdef_new.md")})
    assert upload_mark("0123456789abcdef_new.md") in recorded_uploads(record)
    forget_uploads(record)
    assert record.values == {} and recorded_uploads(record) == set()
