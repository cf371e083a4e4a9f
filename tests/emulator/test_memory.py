"""A 256 MiB upload and download must not grow the emulator process by more than a few tens of
MiB: bodies are streamed to and from disk. Measured on an EmulatorProcess with psutil."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest
import requests

from airflow_openai_files.emulator import EmulatorProcess
from benchmarks.bench_emulator import BOUNDARY, multipart_body

MiB = 1024 * 1024
SIZE = 256 * MiB
LIMIT = 48 * MiB  # "a few tens of MiB"


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.mark.slow
def test_256mib_upload_and_download_in_bounded_memory(tmp_path: Path) -> None:
    with EmulatorProcess(data_dir=tmp_path) as proc:
        headers = {
            "Authorization": f"Bearer {proc.api_key}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        # warm up: one small request so that lazily created state is part of the baseline
        requests.get(f"{proc.base_url}/files", headers=headers)
        with PeakRss(proc.pid) as upload_rss:
            response = requests.post(f"{proc.base_url}/files", data=multipart_body(SIZE), headers=headers)
        assert response.ok, response.text
        file_id = response.json()["id"]
        assert response.json()["bytes"] == SIZE

        received = 0
        with (
            PeakRss(proc.pid) as download_rss,
            requests.get(f"{proc.base_url}/files/{file_id}/content", headers=headers, stream=True) as download,
        ):
            for chunk in download.iter_content(MiB):
                received += len(chunk)
        assert received == SIZE
        print(f"\nRSS growth: upload {upload_rss.growth / MiB:.1f} MiB, download {download_rss.growth / MiB:.1f} MiB")
        assert upload_rss.growth < LIMIT, upload_rss.growth / MiB
        assert download_rss.growth < LIMIT, download_rss.growth / MiB
        (tmp_path / "files" / file_id).unlink()
