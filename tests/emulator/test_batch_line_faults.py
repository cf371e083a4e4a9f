"""Scripted line failures and expiry with partial results: what a client's line retries are tested against."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest

from airflow_openai_files.emulator import Emulator, EmulatorProcess
from tests.emulator.batch_support import by_custom_id, chat_line, create, read_lines
from tests.emulator.conftest import sdk_client


def finished(client: openai.OpenAI, batch_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled") or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def test_chosen_lines_fail_their_first_attempts_then_succeed(
    client: openai.OpenAI, openai_files_emulator: Emulator
) -> None:
    emu = openai_files_emulator
    emu.add_line_fault(status=429, custom_ids=["r1", "r3"], times=1)
    emu.add_line_fault(status=500, custom_ids=["r2"], times=2)
    first = finished(client, create(client, [chat_line(i) for i in range(5)]).id)
    assert first.status == "completed"
    assert (first.request_counts.total, first.request_counts.completed, first.request_counts.failed) == (5, 2, 3)
    errors = by_custom_id(read_lines(client, first.error_file_id))
    assert sorted(errors) == ["r1", "r2", "r3"]
    assert errors["r1"]["response"]["status_code"] == 429
    assert errors["r1"]["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    assert errors["r2"]["response"]["status_code"] == 500
    assert errors["r2"]["response"]["body"]["error"]["type"] == "server_error"
    assert sorted(by_custom_id(read_lines(client, first.output_file_id))) == ["r0", "r4"]
    # sent again: r1 and r3 are answered now; r2 fails once more, then is answered
    again = finished(client, create(client, [chat_line(i) for i in (1, 2, 3)]).id)
    assert sorted(by_custom_id(read_lines(client, again.output_file_id))) == ["r1", "r3"]
    assert sorted(by_custom_id(read_lines(client, again.error_file_id))) == ["r2"]
    third = finished(client, create(client, [chat_line(2)]).id)
    assert third.request_counts.completed == 1 and third.error_file_id is None


def test_a_fraction_of_lines_fails_deterministically(client: openai.OpenAI, openai_files_emulator: Emulator) -> None:
    emu = openai_files_emulator
    emu.add_line_fault(status=503, fraction=0.2, times=1)
    batch = finished(client, create(client, [chat_line(i) for i in range(200)]).id)
    failed = sorted(by_custom_id(read_lines(client, batch.error_file_id)))
    assert 20 <= len(failed) <= 60  # about a fifth of the lines, chosen by a hash of the custom_id
    emu.reset()
    emu.add_line_fault(status=503, fraction=0.2, times=1)
    again = finished(client, create(client, [chat_line(i) for i in range(200)]).id)
    assert sorted(by_custom_id(read_lines(client, again.error_file_id))) == failed  # the same lines


def test_expired_batch_delivers_answered_lines_and_lists_the_rest(tmp_path: Path) -> None:
    # The process emulator: faults and expiry go through the admin API, as a DAG test would use them.
    with EmulatorProcess(data_dir=tmp_path / "p", batch_in_progress_seconds=100) as emu, sdk_client(emu) as client:
        batch = create(client, [chat_line(i) for i in range(10)])
        assert finished(client, batch.id, timeout=0.5).status == "in_progress"
        emu.advance_clock(40)  # 4 of 10 lines answered on the batch's schedule
        expired = emu.expire_batch(batch.id)
        assert expired["status"] == "expired" and expired["expired_at"] is not None
        assert expired["request_counts"] == {"total": 10, "completed": 4, "failed": 6}
        answered = by_custom_id(read_lines(client, expired["output_file_id"]))
        rest = by_custom_id(read_lines(client, expired["error_file_id"]))
        assert sorted(answered) == ["r0", "r1", "r2", "r3"]
        assert sorted(rest) == [f"r{i}" for i in range(4, 10)]
        assert {line["error"]["code"] for line in rest.values()} == {"batch_expired"}
        assert all(line["response"] is None for line in rest.values())
        with pytest.raises(ValueError, match="only a running batch can expire"):
            emu.expire_batch(batch.id)
        fault = emu.add_line_fault(status=429, custom_ids=["r0"])
        assert fault["status"] == 429 and fault["custom_ids"] == ["r0"] and fault["times"] == 1
        with pytest.raises(ValueError, match="either custom_ids or a fraction"):
            emu.add_line_fault(status=429)
