"""Issue 7's end-to-end proof: a 2 GiB file goes through the upload operator, in parallel parts, byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from airflow_openai_files.emulator import EmulatorProcess
from airflow_openai_files.operators import OpenAIUploadFileOperator
from tests.support.connections import use_emulator
from tests.support.files import sha256
from tests.support.memory_probe import current_rss, peak_rss, reset_peak
from tests.support.task_helpers import make_context

MiB = 1024 * 1024
SIZE = 2 * 1024 * MiB


@pytest.mark.slow
def test_two_gib_through_the_upload_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "corpus.jsonl"
    line = (json.dumps({"text": "x" * 1000}) + "\n").encode()
    block = line * (MiB // len(line))
    digest = hashlib.sha256()
    with open(source, "wb") as handle:
        written = 0
        while written < SIZE:
            chunk = block[: SIZE - written]
            handle.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    expected = digest.hexdigest()

    with EmulatorProcess(data_dir=tmp_path / "emulator") as emu:
        use_emulator(monkeypatch, emu)
        op = OpenAIUploadFileOperator(task_id="upload_corpus", file_path=str(source), purpose="user_data")
        started = time.monotonic()
        reset_peak()
        rss_before = current_rss()
        created = op.execute(make_context())
        elapsed = time.monotonic() - started
        growth = peak_rss() - rss_before
        print(
            f"2 GiB through the operator: {elapsed:.1f}s, {SIZE / MiB / elapsed:.0f} MiB/s, peak RSS growth {growth / MiB:.1f} MiB"
        )

        assert created["bytes"] == SIZE and created["filename"] == "corpus.jsonl"
        parts = [entry for entry in emu.request_log() if entry[1].endswith("/parts")]
        assert len(parts) == SIZE // (64 * MiB)  # the default threshold (512 MiB) sent it through 64 MiB parts
        assert [f["id"] for f in emu.files()] == [created["id"]]
        stored = emu.content_path(created["id"])
        source.unlink()  # free 2 GiB before hashing the stored copy
        assert sha256(stored) == expected
        # The peak mark was reset just before: one whole 64 MiB part held in memory would show here.
        assert growth < 48 * MiB
    assert not os.path.exists(source)
