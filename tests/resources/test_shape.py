"""Every resource module has the one shape the sensor, trigger and operator bases are written against."""

from __future__ import annotations

from types import ModuleType

import pytest

from airflow_openai_files.resources import Verdict, batches, files, fine_tuning

MODULES = [files, batches, fine_tuning]
IDS = {files: "file-abc123", batches: "batch_abc123", fine_tuning: "ftjob-abc123"}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.KIND)
def test_the_shape(module: ModuleType) -> None:
    assert module.ID_PATTERN.match(IDS[module])
    assert set(module.SUCCESS) <= set(module.TERMINAL) and set(module.FAILURE).isdisjoint(module.SUCCESS)
    assert module.check_target(module.SUCCESS) == tuple(module.SUCCESS)
    with pytest.raises(ValueError, match="must be one or more of"):
        module.check_target(("no_such_status",))
    with pytest.raises(ValueError):
        module.check_target(())
    message = module.not_found_message(IDS[module])
    assert message.startswith(f"{module.KIND.capitalize()} {IDS[module]} does not exist (HTTP 404)")


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.KIND)
def test_judge_ends_a_wait_on_success_and_failure_only(module: ModuleType) -> None:
    object_id = IDS[module]
    done = module.judge({"id": object_id, "status": module.SUCCESS[0]}, module.SUCCESS)
    assert isinstance(done, Verdict) and done.state == "success" and done.done and object_id in done.message
    for status in module.FAILURE:
        verdict = module.judge({"id": object_id, "status": status}, module.SUCCESS)
        assert verdict.state == "error" and object_id in verdict.message
    waiting = module.judge({"id": object_id, "status": "some_new_status"}, module.SUCCESS)
    assert waiting.state == "waiting" and not waiting.done  # a status this package does not know is waited through
    assert object_id in module.describe({"id": object_id, "status": "x"})


def test_a_file_wait_for_uploaded_is_over_once_processed() -> None:
    assert files.check_target("uploaded") == ("uploaded", "processed")
    assert files.judge({"id": "file-a", "status": "processed"}, files.check_target("uploaded")).state == "success"
    assert files.judge({"id": "file-a", "status": "uploaded"}, files.check_target("processed")) == (
        "waiting",
        "File file-a is uploaded; waiting for processed",
    )


def test_a_batch_target_may_be_any_terminal_status() -> None:
    every_end = batches.check_target(batches.TERMINAL)
    assert all(batches.judge({"id": "batch_a", "status": s}, every_end).state == "success" for s in batches.TERMINAL)
    failed = {"id": "batch_a", "status": "failed", "errors": {"data": [{"line": 3, "code": "c", "message": "m"}]}}
    assert batches.judge(failed).message.endswith("; errors: line 3: c (m)")
