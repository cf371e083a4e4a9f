"""The shared poller: many waiters answered from list pages, single gets for the rest, fair, cancellable."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import time
from typing import Any

import pytest

from airflow_openai_files.client.async_transport import shared_clients
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesTimeoutError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.hooks.poller import FILES, PollKind, SharedPoller, shared_poller, shared_pollers
from tests.support.emulators import FILES_STAY_UPLOADED, PROCESSING_DELAY


def upload(count: int) -> list[str]:
    hook = OpenAIFilesHook()
    ids = [hook.upload_file(io.BytesIO(b"x" * 16), "user_data", filename=f"p-{i}.bin")["id"] for i in range(count)]
    hook.close()
    return ids


def gets(emulator: Any) -> tuple[int, int]:
    """(list requests, single gets) of files the emulator answered so far."""
    log = [(method, path) for method, path, _ in emulator.request_log() if method == "GET"]
    return (
        sum(1 for _, path in log if path.endswith("/files")),
        sum(1 for _, path in log if "/files/file-" in path),
    )


def delta(emulator: Any, before: tuple[int, int]) -> tuple[int, int]:
    lists, singles = gets(emulator)
    return lists - before[0], singles - before[1]


def small_pages(size: int) -> PollKind:
    return dataclasses.replace(FILES, page_limit=size)


@FILES_STAY_UPLOADED
def test_many_waiters_are_answered_by_one_page(openai_files_connection: Any) -> None:
    ids = upload(40)

    async def scenario() -> list[dict[str, Any]]:
        async with shared_poller("openai_files_default", FILES) as poller:
            return await asyncio.gather(*(poller.fetch(file_id) for file_id in ids))

    before = gets(openai_files_connection)
    answers = asyncio.run(scenario())
    assert [a["id"] for a in answers] == ids
    assert {a["status"] for a in answers} == {"uploaded"}
    lists, singles = delta(openai_files_connection, before)
    assert (lists, singles) == (1, 0)
    # the counter the triggerer benchmark reads agrees with the log
    assert openai_files_connection.request_count() == len(openai_files_connection.request_log())


@FILES_STAY_UPLOADED
def test_ids_not_on_the_pages_get_their_own_get_and_a_deleted_one_its_404(openai_files_connection: Any) -> None:
    old = upload(3)  # the oldest files: beyond the pages read
    recent = upload(10)
    OpenAIFilesHook().delete_file(old[0])

    async def scenario() -> list[Any]:
        async with shared_poller("openai_files_default", small_pages(5)) as poller:
            # 13 waiters, pages of 5: a budget of ceil(2 * 13 / 5) = 6 pages would reach every file, so
            # the page budget here is what the ids allow: the list ends after 12 live files.
            return await asyncio.gather(*(poller.fetch(i) for i in old + recent), return_exceptions=True)

    before = gets(openai_files_connection)
    answers = asyncio.run(scenario())
    assert isinstance(answers[0], OpenAIFilesError) and answers[0].http_status == 404
    assert [a["id"] for a in answers[1:]] == old[1:] + recent
    lists, singles = delta(openai_files_connection, before)
    assert lists == 3  # 12 live files in pages of 5
    assert singles == 1  # only the deleted file, which no page shows


@FILES_STAY_UPLOADED
def test_page_budget_spent_falls_back_to_single_gets(
    openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("airflow_openai_files.hooks.poller.MAX_PAGES", 2)
    ids = upload(12)

    async def scenario() -> list[dict[str, Any]]:
        async with shared_poller("openai_files_default", small_pages(4)) as poller:
            return await asyncio.gather(*(poller.fetch(i) for i in ids))

    before = gets(openai_files_connection)
    answers = asyncio.run(scenario())
    assert [a["id"] for a in answers] == ids
    lists, singles = delta(openai_files_connection, before)
    assert (lists, singles) == (2, 4)  # the 8 newest from two pages, the 4 oldest one by one


@FILES_STAY_UPLOADED
def test_every_waiter_gets_fresh_data_every_interval(openai_files_connection: Any) -> None:
    """Many waiters, pages too small for them all: each still hears at least once per its interval, and never
    from a request sent before it asked (the flip is seen by every fetch that started after it)."""
    ids = upload(30)
    interval = 0.4
    flip_at: list[float] = []

    async def waiter(poller: SharedPoller, file_id: str, rounds: int) -> list[tuple[float, float, str]]:
        seen = []
        due = time.monotonic()
        for _ in range(rounds):
            asked = time.monotonic()
            obj = await poller.fetch(file_id, due=due)
            seen.append((asked, time.monotonic(), obj["status"]))
            due = max(due + interval, asked)  # the trigger's cadence: one look per interval
            await asyncio.sleep(max(0.0, due - time.monotonic()) * 0.5)  # asks again before it is due
        return seen

    async def flip() -> None:
        await asyncio.sleep(1.2)
        await asyncio.to_thread(openai_files_connection.advance_clock, PROCESSING_DELAY * 2)
        flip_at.append(time.monotonic())

    async def scenario() -> list[list[tuple[float, float, str]]]:
        async with shared_poller("openai_files_default", small_pages(8)) as poller:
            flipping = asyncio.create_task(flip())
            results = await asyncio.gather(*(waiter(poller, i, 6) for i in ids))
            await flipping
            return list(results)

    histories = asyncio.run(scenario())
    for history in histories:
        answered = [done for _, done, _ in history]
        # one answer per interval at least: the gaps stay within the interval plus one round's time
        assert max(b - a for a, b in itertools.pairwise(answered)) < interval + 1.0, answered
        for asked, _, status in history:
            if asked > flip_at[0]:
                assert status == "processed"  # fresh: from a request sent after the ask


@FILES_STAY_UPLOADED
def test_a_waiter_not_due_and_not_on_a_page_waits_its_turn(openai_files_connection: Any) -> None:
    ids = upload(6)

    async def scenario() -> tuple[float, float]:
        async with shared_poller("openai_files_default", small_pages(1)) as poller:
            started = time.monotonic()
            late = asyncio.create_task(poller.fetch(ids[0], due=started + 0.8))  # oldest: not on the 1st page
            now = asyncio.create_task(poller.fetch(ids[-1]))  # newest, due now: on the first page
            await now
            first = time.monotonic() - started
            await late
            return first, time.monotonic() - started

    first, late = asyncio.run(scenario())
    assert first < 0.8 <= late


@FILES_STAY_UPLOADED
def test_deadline_ends_one_waiter_only(openai_files_connection: Any) -> None:
    ids = upload(2)

    async def scenario() -> tuple[Any, dict[str, Any]]:
        async with shared_poller("openai_files_default", FILES) as poller:
            now = time.monotonic()
            stopped = poller.fetch(ids[0], due=now + 30, deadline=now + 0.3)
            served = poller.fetch(ids[1], due=now + 0.5)
            return tuple(await asyncio.gather(stopped, served, return_exceptions=True))  # type: ignore[return-value]

    stopped, served = asyncio.run(scenario())
    assert isinstance(stopped, OpenAIFilesTimeoutError)
    assert served["id"] == ids[1]


@FILES_STAY_UPLOADED
def test_cancelled_waiters_leave_at_once_and_the_last_user_closes_everything(openai_files_connection: Any) -> None:
    ids = upload(10)

    async def scenario() -> tuple[int, int, list[dict[str, Any]], int, int]:
        async with shared_poller("openai_files_default", FILES) as poller:
            far = time.monotonic() + 60
            doomed = [asyncio.create_task(poller.fetch(i, due=far)) for i in ids[:5]]
            kept = [asyncio.create_task(poller.fetch(i, due=far - 59.5)) for i in ids[5:]]
            await asyncio.sleep(0)
            registered = poller.waiting()
            for task in doomed:
                task.cancel()
            await asyncio.gather(*doomed, return_exceptions=True)
            left = poller.waiting()
            answers = await asyncio.gather(*kept)
        return registered, left, answers, len(shared_pollers()), len(shared_clients())

    registered, left, answers, pollers, clients = asyncio.run(scenario())
    assert (registered, left) == (10, 5)
    assert [a["id"] for a in answers] == ids[5:]
    assert (pollers, clients) == (0, 0)


@FILES_STAY_UPLOADED
def test_a_refused_list_turns_to_single_gets_for_good(openai_files_connection: Any) -> None:
    ids = upload(3)

    async def refused(hook: Any, limit: int, after: str | None) -> dict[str, Any]:
        return await hook.request_json("GET", "files", what="Listing files", params={"limit": 0})  # a 400

    kind = dataclasses.replace(FILES, name="files-refused", list_page=refused)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with shared_poller("openai_files_default", kind) as poller:
            first = await asyncio.gather(*(poller.fetch(i) for i in ids))
            second = await asyncio.gather(*(poller.fetch(i) for i in ids))
            return first, second

    before = gets(openai_files_connection)
    first, second = asyncio.run(scenario())
    assert [a["id"] for a in first] == [a["id"] for a in second] == ids
    lists, singles = delta(openai_files_connection, before)
    assert (lists, singles) == (1, 6)
