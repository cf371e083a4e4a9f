"""Many triggers of one connection in one triggerer loop: one event each, few requests, restarts in any order.

The triggers run as Airflow's triggerer runs them: each rebuilt from its serialized form and run by
``TriggerRunner.run_trigger`` as one task of one event loop (airflow/jobs/triggerer_job_runner.py).
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from typing import Any

from airflow.jobs.triggerer_job_runner import TriggerRunner

from airflow_openai_files.client.async_transport import shared_clients
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.hooks.poller import shared_pollers
from airflow_openai_files.triggers import OpenAIFileTrigger
from tests.support.emulators import FILES_STAY_UPLOADED, PROCESSING_DELAY
from tests.support.triggers import rebuild


def upload(count: int) -> list[str]:
    hook = OpenAIFilesHook()
    ids = [hook.upload_file(io.BytesIO(b"y" * 8), "user_data", filename=f"s-{i}.bin")["id"] for i in range(count)]
    hook.close()
    return ids


def file_gets(emulator: Any) -> tuple[int, int]:
    """(pages of GET /files, single GET /files/{id}) the emulator answered."""
    paths = [path for method, path, _ in emulator.request_log() if method == "GET"]
    return sum(1 for p in paths if p.endswith("/files")), sum(1 for p in paths if "/files/file-" in p)


class Triggerer:
    """Airflow's TriggerRunner running rebuilt triggers in the current loop; the events each one fired."""

    def __init__(self) -> None:
        self.runner = TriggerRunner()
        self.runner.events = []  # type: ignore[assignment]  # the outbound queue, read by the test

    def start(self, triggers: list[Any]) -> None:
        for trigger in triggers:
            trigger_id = len(self.runner.triggers)
            trigger = rebuild(trigger)
            trigger.trigger_id = trigger_id
            task = asyncio.create_task(self.runner.run_trigger(trigger_id, trigger), name=f"t{trigger_id}")
            self.runner.triggers[trigger_id] = {
                "task": task,
                "is_watcher": False,
                "name": f"t{trigger_id}",
                "events": 0,
            }

    async def wait(self, timeout: float = 60) -> None:
        await asyncio.wait_for(asyncio.gather(*(d["task"] for d in self.runner.triggers.values())), timeout)

    async def shut_down(self) -> None:
        """What a stopping triggerer does: cancel every trigger task (no message: not a user action)."""
        tasks = [d["task"] for d in self.runner.triggers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def payloads(self) -> dict[str, list[dict[str, Any]]]:
        fired: dict[str, list[dict[str, Any]]] = {}
        for entry in self.runner.events:
            # Airflow 3.2+ queues a message with ``.event``; 3.1 a ``(trigger_id, event)`` tuple.
            payload = (entry[1] if isinstance(entry, tuple) else entry.event).payload
            fired.setdefault(payload["file_id"], []).append(payload)
        return fired


@FILES_STAY_UPLOADED
def test_forty_triggers_one_event_each_from_list_pages(openai_files_connection: Any) -> None:
    ids = upload(40)
    before = file_gets(openai_files_connection)

    async def scenario() -> tuple[dict[str, list[dict[str, Any]]], int]:
        triggerer = Triggerer()
        triggerer.start([OpenAIFileTrigger(i, poll_interval=0.3, timeout=60) for i in ids])
        await asyncio.sleep(1.0)  # a few poll intervals of waiting
        await asyncio.to_thread(openai_files_connection.advance_clock, PROCESSING_DELAY + 1)
        await triggerer.wait()
        return triggerer.payloads(), len(shared_pollers())

    fired, pollers = asyncio.run(scenario())
    assert sorted(fired) == sorted(ids)
    assert all([p["status"] for p in payloads] == ["success"] for payloads in fired.values())
    assert all(payloads[0]["file"]["status"] == "processed" for payloads in fired.values())
    pages, singles = (
        after - earlier for after, earlier in zip(file_gets(openai_files_connection), before, strict=True)
    )
    assert singles == 0
    # one page per round; a round per poll interval (0.3 s) over ~1.3 s, with slack for a loaded machine,
    # where 40 triggers polling alone would have sent 40 a round
    assert 1 <= pages <= 12, pages
    assert pollers == 0


@FILES_STAY_UPLOADED
def test_a_restart_recreates_the_triggers_in_any_order(openai_files_connection: Any) -> None:
    ids = upload(24)
    OpenAIFilesHook().delete_file(ids[3])
    triggers = [OpenAIFileTrigger(i, poll_interval=0.2, timeout=120) for i in ids]

    async def first_triggerer() -> tuple[dict[str, list[dict[str, Any]]], int, int]:
        triggerer = Triggerer()
        triggerer.start(triggers)
        # Until every live trigger has had an answer (the deleted file's trigger has fired its error).
        deadline = time.monotonic() + 30
        while file_gets(openai_files_connection)[0] < 2:
            assert time.monotonic() < deadline, "no round of polling"
            await asyncio.sleep(0.05)
        await triggerer.shut_down()
        return triggerer.payloads(), len(shared_pollers()), len(shared_clients())

    fired, pollers, clients = asyncio.run(first_triggerer())
    assert list(fired) == [ids[3]]  # only the deleted file's trigger fired, with its error
    assert fired[ids[3]][0]["status"] == "error" and ids[3] in fired[ids[3]][0]["message"]
    assert (pollers, clients) == (0, 0)  # the shutdown closed the poller and its client

    # The new triggerer re-creates the triggers still deferred, in whatever order it reads them.
    again = [t for t in triggers if t.file_id != ids[3]]
    random.Random(7).shuffle(again)
    openai_files_connection.advance_clock(PROCESSING_DELAY + 1)

    async def second_triggerer() -> dict[str, list[dict[str, Any]]]:
        triggerer = Triggerer()
        triggerer.start(again)
        await triggerer.wait()
        return triggerer.payloads()

    fired = asyncio.run(second_triggerer())
    assert sorted(fired) == sorted(t.file_id for t in again)
    assert all([p["status"] for p in payloads] == ["success"] for payloads in fired.values())


@FILES_STAY_UPLOADED
def test_a_short_deadline_times_out_alone(openai_files_connection: Any) -> None:
    ids = upload(8)

    async def scenario() -> tuple[dict[str, list[dict[str, Any]]], float]:
        triggerer = Triggerer()
        started = time.monotonic()
        short = OpenAIFileTrigger(ids[0], poll_interval=0.3, timeout=1.0)
        triggerer.start([short] + [OpenAIFileTrigger(i, poll_interval=0.3, timeout=60) for i in ids[1:]])
        await triggerer.runner.triggers[0]["task"]
        took = time.monotonic() - started
        await asyncio.to_thread(openai_files_connection.advance_clock, PROCESSING_DELAY + 1)
        await triggerer.wait()
        return triggerer.payloads(), took

    fired, took = asyncio.run(scenario())
    assert [p["status"] for p in fired[ids[0]]] == ["timeout"]
    assert "Timed out" in fired[ids[0]][0]["message"] and fired[ids[0]][0]["file"]["status"] == "uploaded"
    assert 1.0 <= took < 3.0
    assert all([p["status"] for p in fired[i]] == ["success"] for i in ids[1:])
