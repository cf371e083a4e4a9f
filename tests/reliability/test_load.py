"""
Load: 32 threads, each with its own hook, run 1,000 mixed operations against one emulator while
random faults hit about one request in ten. Nothing may surface to a caller, no file may be
duplicated, and every download must be byte-identical. The counts are printed with the test output.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.reliability.helpers import Waits, part_files, tune
from tests.support.files import sha256

THREADS = 32
OPERATIONS = 1000
SEED = 20_241_125
FAULT_RATE = 0.14  # per operation: an operation averages ~1.4 requests, so about 10% of requests
MIX = {"upload": 30, "download": 25, "retrieve": 20, "delete": 15, "list": 10}


class Ledger:
    """What the workers did and saw, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.remaining = OPERATIONS
        self.ops: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []
        self.corrupt: list[str] = []
        self.live: dict[str, tuple[str, str]] = {}  # filename -> (file id, sha256)
        self.deleted: set[str] = set()

    def take(self) -> bool:
        with self.lock:
            if self.remaining <= 0 or self.errors:
                return False
            self.remaining -= 1
            return True


def _fault_for(kind: str, rng: random.Random, file_id: str | None) -> tuple[str, dict[str, Any]]:
    """A random fault aimed at the kind of request the operation is about to send."""
    throttle = {"status": 429, "headers": {"retry-after-ms": str(rng.choice((5, 10, 20)))}}
    overloaded = {"status": 503}
    if kind == "upload":
        name, fault = rng.choice(
            [("503", overloaded), ("429", throttle), ("close_after_body", {"action": "close_after_body"})]
        )
        return name, {"method": "POST", "path": "/v1/files", **fault}
    if kind == "download":
        name, fault = rng.choice(
            [("truncate_body", {"action": "truncate_body"}), ("503", overloaded), ("429", throttle)]
        )
        return name, {"method": "GET", "path": f"/v1/files/{file_id}/content", **fault}
    name, fault = rng.choice([("503", overloaded), ("429", throttle)])
    method, path = {
        "list": ("GET", "/v1/files"),
        "retrieve": ("GET", f"/v1/files/{file_id}"),
        "delete": ("DELETE", f"/v1/files/{file_id}"),
    }[kind]
    return name, {"method": method, "path": path, **fault}


def _worker(index: int, emu: Emulator, ledger: Ledger, root: Path, waits: Waits) -> None:
    rng = random.Random(SEED + index)
    hook = OpenAIFilesHook()  # its own hook and connection pool
    tune(hook, waits, base=0.005, cap=0.05)
    mine: dict[str, tuple[str, str]] = {}  # filename -> (id, sha256) of this worker's live files
    folder = root / f"worker-{index}"
    folder.mkdir()
    n = 0
    try:
        while ledger.take():
            n += 1
            kind = rng.choices(list(MIX), weights=list(MIX.values()))[0] if mine else "upload"
            name = rng.choice(sorted(mine)) if mine else None
            file_id = mine[name][0] if name else None
            if rng.random() < FAULT_RATE:
                fault_name, fault = _fault_for(kind, rng, file_id)
                emu.add_fault(**fault)
                with ledger.lock:
                    ledger.faults[f"{kind}:{fault_name}"] += 1
            if kind == "upload":
                data = rng.randbytes(rng.randint(1, 32 * 1024))
                filename = f"w{index:02d}-{n:04d}.png"
                source = folder / filename
                source.write_bytes(data)
                created = hook.upload_file(source, "vision")  # a purpose whose content can be downloaded
                assert created["filename"] == filename and created["bytes"] == len(data)
                mine[filename] = (created["id"], sha256(data))
            elif kind == "download":
                dest = folder / f"{name}.{n}.copy"
                hook.download_file(file_id, dest)
                if sha256(dest) != mine[name][1]:
                    with ledger.lock:
                        ledger.corrupt.append(f"{name} -> {dest}")
                dest.unlink()
            elif kind == "retrieve":
                assert hook.get_file(file_id)["filename"] == name
            elif kind == "delete":
                assert hook.delete_file(file_id)["deleted"] is True
                del mine[name]
                with ledger.lock:
                    ledger.deleted.add(name)
            else:
                assert sum(1 for _ in hook.list_files(purpose="vision")) >= len(mine)
            with ledger.lock:
                ledger.ops[kind] += 1
        assert part_files(folder) == [], "a partial download was left behind"
    except BaseException as err:  # every error is a failure of the test, reported below
        with ledger.lock:
            ledger.errors.append(f"worker {index}: {type(err).__name__}: {err}")
    finally:
        hook.close()
        with ledger.lock:
            ledger.live.update(mine)


def test_load_with_random_faults(emu: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger()
    waits = [Waits(really_sleep=True) for _ in range(THREADS)]
    started = time.monotonic()
    threads = [
        threading.Thread(target=_worker, args=(i, emu, ledger, tmp_path, waits[i]), name=f"load-{i}")
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a worker hung"

    log = emu.request_log()
    statuses = collections.Counter(status for _, path, status in log if path.startswith("/v1"))
    with urllib.request.urlopen(f"{emu.url}/_emulator/faults", timeout=10) as answer:
        unused = len(json.loads(answer.read()))
    files = emu.files()
    per_name = collections.Counter(item["filename"] for item in files)
    report = "\n".join(
        [
            f"load: {THREADS} threads, {sum(ledger.ops.values())} operations in {elapsed:.1f}s",
            f"  operations by kind: {dict(sorted(ledger.ops.items()))}",
            f"  faults injected: {sum(ledger.faults.values())} ({unused} never met a request): {dict(sorted(ledger.faults.items()))}",
            f"  requests seen by the emulator: {sum(statuses.values())}, by status: {dict(sorted(statuses.items()))}",
            f"  retries (waits) taken by the hooks: {sum(len(w.seconds) for w in waits)}",
            f"  errors surfaced: {len(ledger.errors)}, corrupted downloads: {len(ledger.corrupt)}, "
            f"duplicated filenames: {sum(1 for c in per_name.values() if c > 1)}",
            f"  files left: {len(files)} (uploaded {ledger.ops['upload']}, deleted {len(ledger.deleted)})",
        ]
    )
    with capfd.disabled():
        print("\n" + report)

    assert ledger.errors == [], ledger.errors[:5]
    assert sum(ledger.ops.values()) == OPERATIONS
    assert ledger.corrupt == []
    assert [name for name, count in per_name.items() if count > 1] == [], "duplicate files"
    # exactly the files the callers believe exist, each byte-identical
    assert {item["filename"]: item["id"] for item in files} == {name: fid for name, (fid, _) in ledger.live.items()}
    for item in files:
        assert sha256(emu.content_path(item["id"])) == ledger.live[item["filename"]][1]
    # the faults really happened, at about the intended rate
    injected = sum(ledger.faults.values())
    met = injected - unused
    assert met >= 0.08 * sum(statuses.values()), report
    assert statuses[503] > 0 and statuses[429] > 0 and statuses[0] > 0, report
