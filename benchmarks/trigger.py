"""Section 5: many ``OpenAIFileTrigger``s in one event loop, waiting on files that turn ``processed`` together.

``python -m benchmarks.trigger BASE_URL COUNT POLL_INTERVAL`` (run in a fresh process, against an
emulator started with a huge processing delay) prints JSON. It uploads COUNT small files (they stay
``uploaded``), runs COUNT triggers as tasks of one event loop next to a ticker that measures how late
``asyncio.sleep(0.01)`` wakes, waits until every trigger has polled once and two poll intervals more, then moves the emulator's
clock past the delay (the flip: every file is ``processed`` from that instant) and times the events.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import sys
import time
from typing import Any

from tests.support.connections import export_connection
from tests.support.memory_probe import PROBE_KEY

TICK = 0.01
PROCESSING_DELAY = 1_000_000.0  # the emulator's: files stay 'uploaded' until the flip
FLIP_SECONDS = 2 * PROCESSING_DELAY


def create_files(base_url: str, count: int) -> list[str]:
    from airflow_openai_files.hooks import OpenAIFilesHook

    hook = OpenAIFilesHook()
    ids = []
    for index in range(count):
        created = hook.upload_file(io.BytesIO(b"x" * 64), "user_data", filename=f"trigger-{index}.bin")
        if created.get("status") != "uploaded":
            raise RuntimeError(f"expected a file still 'uploaded' (processing delay), got {created}")
        ids.append(created["id"])
    hook.close()
    return ids


async def _polled_ids(client: Any, admin: str) -> set[str]:
    response = await client.get(f"{admin}/requests")
    return {
        path.rsplit("/", 1)[-1] for method, path, _ in response.json() if method == "GET" and "/files/file-" in path
    }


async def run(base_url: str, ids: list[str], poll_interval: float) -> dict[str, Any]:
    import httpx

    from airflow_openai_files.client.async_transport import shared_clients
    from airflow_openai_files.triggers import OpenAIFileTrigger

    admin = base_url.rsplit("/v1", 1)[0] + "/_emulator"
    lags: list[tuple[float, float]] = []  # (when, lag)
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            lags.append((now, now - before - TICK))

    events: dict[str, tuple[float, dict[str, Any]]] = {}
    collections: list[tuple[float, float, int]] = []  # (start, end, generation) of each garbage collection
    gc_started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.monotonic()
        else:
            collections.append((gc_started[0], time.monotonic(), info["generation"]))

    gc.callbacks.append(on_gc)

    async def watch(trigger: OpenAIFileTrigger) -> None:
        async for event in trigger.run():
            events[trigger.file_id] = (time.monotonic(), event.payload)
            return

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    tasks = [
        asyncio.create_task(watch(OpenAIFileTrigger(file_id, poll_interval=poll_interval, timeout=600)))
        for file_id in ids
    ]
    async with httpx.AsyncClient(timeout=60) as admin_client:
        wanted = set(ids)
        while not wanted <= await _polled_ids(admin_client, admin):
            if time.monotonic() - started > 120:
                raise RuntimeError("the triggers did not all poll within 120 s")
            await asyncio.sleep(0.2)
        first_round = time.monotonic()
        clients = len(shared_clients())  # one per connection: every trigger polls through the same client
        # Two more rounds of steady polling, then the flip lands just after a round: close to the
        # worst case, where every trigger has just polled and sees the change one interval later.
        await asyncio.sleep(2 * poll_interval)
        flip = time.monotonic()
        await admin_client.post(f"{admin}/clock", json={"advance": FLIP_SECONDS})
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=poll_interval * 3 + 120)
    stop.set()
    await tick_task
    gc.callbacks.remove(on_gc)

    def during_gc(when: float, lag: float) -> bool:
        began = when - lag - TICK
        return any(start < when and end > began for start, end, _ in collections)

    last = max(when for when, _ in events.values())
    statuses = sorted({payload["status"] for _, payload in events.values()})
    startup = [lag for when, lag in lags if when <= first_round]
    polling = sorted(lag for when, lag in lags if when > first_round)
    before_flip = [lag for when, lag in lags if first_round < when <= flip]
    after_flip = [lag for when, lag in lags if when > flip]
    return {
        "triggers": len(ids),
        "http_clients": clients,
        "poll_interval": poll_interval,
        "statuses": statuses,
        "events": len(events),
        "startup_seconds": first_round - started,
        "flip_to_last_event": last - flip,
        "flip_to_first_event": min(when for when, _ in events.values()) - flip,
        "lag_max_polling": polling[-1] if polling else 0.0,
        "lag_p99_polling": polling[int(len(polling) * 0.99)] if polling else 0.0,
        "lag_max_startup": max(startup) if startup else 0.0,
        "lag_max_before_flip": max(before_flip, default=0.0),
        "lag_max_after_flip": max(after_flip, default=0.0),
        "ticks": len(lags),
        "lag_max_polling_outside_gc": max(
            (lag for when, lag in lags if when > first_round and not during_gc(when, lag)), default=0.0
        ),
        "gc_max_pause": max((end - start for start, end, _ in collections if start > first_round), default=0.0),
        "gc_full_collections": sum(1 for start, _, gen in collections if gen == 2 and start > first_round),
        "gc_objects": len(gc.get_objects()),
    }


def main() -> None:
    base_url, count, poll_interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    export_connection(host=base_url, password=PROBE_KEY, extra={"max_retries": 3})
    ids = create_files(base_url, count)
    result = asyncio.run(run(base_url, ids, poll_interval))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
