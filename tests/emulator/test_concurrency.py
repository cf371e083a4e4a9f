"""Many clients at once: nothing lost, listings consistent, parts of one Upload in parallel."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import requests

from airflow_openai_files.emulator import Emulator
from tests.emulator.conftest import ValidatingSession

THREADS = 16
PER_THREAD = 8


def test_sixteen_clients_upload_and_list(openai_files_emulator: Emulator) -> None:
    def worker(n: int) -> list[str]:
        ids = []
        with ValidatingSession(openai_files_emulator) as http:
            for i in range(PER_THREAD):
                payload = f"{n}-{i}-".encode() * 1000
                created = http.post("/files", files={"file": (f"{n}-{i}.png", payload)}, data={"purpose": "vision"})
                assert created.ok, created.text
                ids.append(created.json()["id"])
                listing = http.get("/files", params={"limit": 5})
                assert listing.ok and len(listing.json()["data"]) <= 5
                assert http.get(f"/files/{ids[-1]}/content").content == payload
        return ids

    with ThreadPoolExecutor(THREADS) as pool:
        all_ids = [i for ids in pool.map(worker, range(THREADS)) for i in ids]
    assert len(set(all_ids)) == THREADS * PER_THREAD
    assert sorted(f["id"] for f in openai_files_emulator.files()) == sorted(all_ids)
    with ValidatingSession(openai_files_emulator) as http:
        paged: list[str] = []
        after = None
        while True:
            params: dict[str, str | int] = {"limit": 7, **({"after": after} if after else {})}
            body = http.get("/files", params=params).json()
            paged += [f["id"] for f in body["data"]]
            if not body["has_more"]:
                break
            after = body["last_id"]
    assert sorted(paged) == sorted(all_ids) and len(paged) == len(all_ids)


def test_parts_in_parallel(openai_files_emulator: Emulator) -> None:
    chunks = [bytes([i]) * 200_000 for i in range(12)]
    whole = b"".join(chunks)
    with ValidatingSession(openai_files_emulator) as http:
        upload = http.post(
            "/uploads",
            json={"filename": "p.bin", "purpose": "user_data", "bytes": len(whole), "mime_type": "application/x"},
        ).json()

    def send(chunk: bytes) -> str:
        response = requests.post(
            f"{openai_files_emulator.base_url}/uploads/{upload['id']}/parts",
            files={"data": ("blob", chunk)},
            headers={"Authorization": f"Bearer {openai_files_emulator.api_key}"},
        )
        assert response.ok, response.text
        part_id: str = response.json()["id"]
        return part_id

    with ThreadPoolExecutor(THREADS) as pool:
        part_ids = list(pool.map(send, chunks))
    with ValidatingSession(openai_files_emulator) as http:
        done = http.post(
            f"/uploads/{upload['id']}/complete",
            json={"part_ids": part_ids, "md5": hashlib.md5(whole).hexdigest()},
        ).json()
    assert done["status"] == "completed"
    assert openai_files_emulator.content(done["file"]["id"]) == whole
