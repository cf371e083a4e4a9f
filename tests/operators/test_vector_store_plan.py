"""The sync operator's plan from the hashes recorded in the store: pure, no service needed."""

from __future__ import annotations

import hashlib
from typing import Any

from airflow_openai_files.operators._vector_store_source import SourceFile
from airflow_openai_files.operators._vector_store_steps import make_plan
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
