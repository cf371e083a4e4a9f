"""``python -m airflow_openai_files.emulator``: ready line, keys, clean shutdown. How fast it starts is a
figure of ``benchmarks/bench_emulator.py`` (CLI start-up), not a timed test."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from airflow_openai_files.emulator import EmulatorProcess


def test_cli_starts_and_serves(tmp_path: Path) -> None:
    with EmulatorProcess(data_dir=tmp_path, api_key=["sk-one-1234", "sk-two-5678"]) as proc:
        assert proc.startup_seconds is not None
        for key in ("sk-one-1234", "sk-two-5678"):
            assert requests.get(f"{proc.base_url}/files", headers={"Authorization": f"Bearer {key}"}).ok
        assert requests.get(f"{proc.base_url}/files", headers={"Authorization": "Bearer sk-three"}).status_code == 401
        assert (tmp_path / "emulator.sqlite3").exists()


def test_cli_ready_line_and_sigterm(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "airflow_openai_files.emulator", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("OpenAI Files emulator listening on http://127.0.0.1:")
        assert line.rstrip().endswith("/v1")
        base_url = line.rsplit(" ", 1)[1].strip()
        assert requests.get(f"{base_url}/files", headers={"Authorization": "Bearer any"}).ok
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
        if child.stdout is not None:
            child.stdout.close()


def test_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow_openai_files.emulator", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--host", "--port", "--data-dir", "--api-key", "--processing-delay", "--log-level"):
        assert option in out


def test_cli_help_describes_every_api_and_shows_the_timing_defaults() -> None:
    from airflow_openai_files.emulator.core.config import EmulatorConfig

    out = subprocess.run(
        [sys.executable, "-m", "airflow_openai_files.emulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Files and Uploads API" not in out
    for api in ("Files", "Uploads", "Batch", "fine-tuning", "vector stores"):
        assert api in out.split("options:")[0], api
    defaults = EmulatorConfig()
    # One entry per option, its help wrapped over several lines joined into one.
    entries = [" ".join(entry.split()) for entry in re.split(r"\n\s+(?=--)", out)]
    lines = {entry.split()[0]: entry for entry in entries if entry.startswith("--")}
    for option, value in (
        ("--fine-tuning-validate-seconds", defaults.fine_tuning_validate_seconds),
        ("--fine-tuning-queue-seconds", defaults.fine_tuning_queue_seconds),
        ("--fine-tuning-train-seconds", defaults.fine_tuning_train_seconds),
        ("--batch-in-progress-seconds", defaults.batch_in_progress_seconds),
        ("--processing-delay", defaults.processing_delay),
    ):
        assert f"(default {value:g})" in lines[option], lines[option]
