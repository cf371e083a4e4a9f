"""State survives a restart on the same data directory; a temporary one is removed on stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_openai_files.emulator import Emulator, EmulatorProcess
from tests.emulator.conftest import ValidatingSession
from tests.support.files import fine_tune_lines


def test_restart_keeps_files_uploads_and_tombstones(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, file_validation="status") as emu, ValidatingSession(emu) as http:
        kept = http.post("/files", files={"file": ("a.png", bytes(range(256)))}, data={"purpose": "vision"})
        bad = http.post(
            "/files", files={"file": ("t.jsonl", fine_tune_lines(2, system=False))}, data={"purpose": "fine-tune"}
        )
        gone = http.post("/files", files={"file": ("b.txt", b"b")}, data={"purpose": "user_data"}).json()["id"]
        http.delete(f"/files/{gone}")
        upload = http.post(
            "/uploads", json={"filename": "u.jsonl", "purpose": "batch", "bytes": 6, "mime_type": "text/jsonl"}
        ).json()
        part = http.post(f"/uploads/{upload['id']}/parts", files={"data": ("d", b"abcdef")}).json()
        before = emu.files()
        port = emu.port

    with Emulator(data_dir=tmp_path, port=port, file_validation="status") as emu, ValidatingSession(emu) as http:
        assert emu.files() == before
        assert http.get(f"/files/{kept.json()['id']}/content").content == bytes(range(256))
        assert http.get(f"/files/{bad.json()['id']}").json()["status_details"].startswith("fine-tune files need")
        assert http.get(f"/files/{gone}").status_code == 404
        # a cursor on the deleted file still works after the restart
        assert http.get("/files", params={"after": gone}).ok
        done = http.post(f"/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}).json()
        assert http.get(f"/files/{done['file']['id']}/content").content == b"abcdef"


def test_temporary_data_dir_is_removed_on_stop() -> None:
    emu = Emulator().start()
    data_dir = emu.data_dir
    assert data_dir is not None and data_dir.exists()
    emu.stop()
    assert not data_dir.exists()


def test_process_restart_keeps_files(tmp_path: Path) -> None:
    with EmulatorProcess(data_dir=tmp_path, api_key="sk-proc") as proc, ValidatingSession(proc) as http:
        file_id = http.post("/files", files={"file": ("a.txt", b"hello")}, data={"purpose": "user_data"}).json()["id"]
        assert [f["id"] for f in proc.files()] == [file_id]
        assert proc.request_log() == [("POST", "/v1/files", 200)]
    with EmulatorProcess(data_dir=tmp_path, api_key="sk-proc") as proc:
        assert [f["id"] for f in proc.files()] == [file_id]
        assert proc.file(file_id)["filename"] == "a.txt"
        assert proc.content(file_id) == b"hello"
        assert proc.content_path(file_id) == tmp_path / "files" / file_id
        with pytest.raises(KeyError):
            proc.file("file-nope")
        seeded = proc.create_service_file("batch_output", "out.jsonl", b'{"id": 1}\n')
        assert seeded["purpose"] == "batch_output" and proc.content(seeded["id"]) == b'{"id": 1}\n'
        assert proc.uploads() == []
        before = proc.now()
        proc.advance_clock(10)
        assert proc.now() >= before + 10
        proc.add_fault(method="GET", path="/v1/files", status=500)
        assert [f["status"] for f in proc.pending_faults()] == [500]
        with ValidatingSession(proc) as http:
            assert http.get("/files").status_code == 500
        proc.reset()
        assert proc.files() == []
