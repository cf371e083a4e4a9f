"""The service's vocabulary in resources/ and limits is consistent, and what the emulator mints with it is
what the client accepts: the emulator reads these constants instead of keeping copies, so a drift here
would show on both sides at once."""

from __future__ import annotations

import re

import pytest

from airflow_openai_files import limits
from airflow_openai_files.emulator.core.db import new_id
from airflow_openai_files.resources import batches, files, fine_tuning, vector_stores


@pytest.mark.parametrize(
    ("prefix", "pattern"),
    [
        (files.ID_PREFIX, files.ID_PATTERN),
        (batches.ID_PREFIX, batches.ID_PATTERN),
        (fine_tuning.ID_PREFIX, fine_tuning.ID_PATTERN),
        (vector_stores.ID_PREFIX, vector_stores.ID_PATTERN),
        (vector_stores.STORE_ID_PREFIX, limits.VECTOR_STORE_ID_RE),
        (limits.UPLOAD_ID_PREFIX, limits.UPLOAD_ID_RE),
        (limits.PART_ID_PREFIX, limits.PART_ID_RE),
    ],
)
def test_an_id_the_emulator_mints_is_one_the_client_accepts(prefix: str, pattern: re.Pattern[str]) -> None:
    minted = new_id(prefix)
    assert pattern.match(minted), (minted, pattern.pattern)
    assert not pattern.match(new_id("x" + prefix))
    assert limits.SAFE_ID_RE.fullmatch(minted)


def test_a_batch_lifecycle_ends_in_success_and_every_status_is_active_or_terminal() -> None:
    assert batches.LIFECYCLE[-1] in batches.SUCCESS
    assert set(batches.LIFECYCLE[:-1]) <= set(batches.CANCELLABLE) <= set(batches.ACTIVE)
    assert set(batches.ACTIVE).isdisjoint(batches.TERMINAL)
    assert set(batches.RESULT_STATUSES) <= set(batches.TERMINAL)
    assert batches.INPUT_PURPOSE in limits.UPLOAD_PURPOSES and batches.INPUT_PURPOSE in limits.JSONL_PURPOSES
    assert batches.OUTPUT_PURPOSE in limits.SERVICE_PURPOSES and batches.OUTPUT_PURPOSE in limits.DOWNLOADABLE_PURPOSES


def test_a_job_lifecycle_waits_then_succeeds() -> None:
    assert set(fine_tuning.LIFECYCLE[:-1]) <= set(fine_tuning.WAITING)
    assert fine_tuning.LIFECYCLE[-1] in fine_tuning.SUCCESS
    assert set(fine_tuning.WAITING).isdisjoint(fine_tuning.TERMINAL)
    assert (
        fine_tuning.TRAINING_PURPOSE in limits.UPLOAD_PURPOSES and fine_tuning.TRAINING_PURPOSE in limits.JSONL_PURPOSES
    )
    assert fine_tuning.RESULTS_PURPOSE in limits.SERVICE_PURPOSES


def test_file_and_vector_store_vocabulary() -> None:
    assert set(files.AZURE_WAITING).isdisjoint(files.TERMINAL)
    assert set(vector_stores.FILE_COUNT_KEYS) == set(vector_stores.FILE_STATUSES)
    assert set(limits.BATCH_COMPLETION_WINDOWS) == set(limits.BATCH_COMPLETION_WINDOW_SECONDS)
    assert 1 <= limits.PAGE_LIMIT_DEFAULT <= limits.PAGE_LIMIT_MAX
