"""
One shared poller per (connection, kind of object) in the triggerer: many waiting triggers, few requests.

A triggerer that holds a thousand deferred file sensors would otherwise send a thousand ``GET /files/{id}``
every poll interval (200 requests a second at a 5 s poll), spending the organization's rate limit for nothing
and the event loop's time on a thousand answers. The API lists objects newest first, and the objects deferred
tasks wait for are recent ones: one page of ``GET /files?order=desc&limit=...`` (or ``GET /batches``,
``GET /fine_tuning/jobs``) answers most waiters at once. Ids not on the pages read get their own
``GET``, so an old object, a deleted one (the 404 reaches its trigger) or a list that failed still gets an answer.

How a round works. A trigger asks :meth:`SharedPoller.fetch` for its object and says by when it wants it
(``due``: now for its first look, one poll interval after its previous look afterwards) and when it stops
waiting (``deadline``). The poller runs a round when the earliest ``due`` of any waiter comes. The round
serves the waiters that are due or nearly so (within half of their wait, ``EARLY_FRACTION``: answering them
early costs no request and keeps triggers that started apart in step, so that the next round again serves
them all together). It reads list pages until every one of their ids was seen (or the list ends, or the page
budget is spent), answers each waiter whose id was on a page, then sends single ``GET`` s for the ids not on
a page whose waiter is due. A waiter that is not due and not on a page waits for a later round. Hence:

- no waiter is starved: a waiter is always served by the first round at or after its ``due``, and a round
  starts at the earliest ``due``, so each waiter gets data at most one round's duration after its ``due``;
- answers are fresh: a round only serves waiters that were registered before its first request was sent;
- one event and the deadline stay the trigger's: :meth:`fetch` returns an object or raises (the single
  ``GET``'s error, or :class:`OpenAIFilesTimeoutError` at ``deadline``), and the trigger judges it as before.

Lifetime. Triggers hold the poller with ``async with shared_poller(...)``; the last one out cancels the round
task and gives back the async hook's shared client. Nothing survives the event loop (a triggerer restart
re-creates triggers in any order, and they simply register again); a cancelled trigger's waiter is removed at
once, and an answer that arrives for it is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_openai_files import limits
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesTimeoutError
from airflow_openai_files.hooks import OpenAIFilesAsyncHook

log = logging.getLogger(__name__)

GetOne = Callable[[OpenAIFilesAsyncHook, str], Awaitable[dict[str, Any]]]
ListPage = Callable[[OpenAIFilesAsyncHook, int, "str | None"], Awaitable[dict[str, Any]]]

#: How long a round waits after the earliest ``due`` for more waiters to join. Short: a round in flight already
#: gathers every trigger that asks meanwhile (a triggerer picking up hundreds at once fills the next round), and
#: a trigger's first look should not wait.
GATHER_SECONDS = 0.01
#: Single ``GET`` s in flight at once per poller (the shared client's pool has 20 connections).
SINGLE_GETS_AT_ONCE = 10
#: A waiter is answered early by a round that comes within this fraction of its wait from its due time: it
#: keeps triggers that started apart in step (one round serves them all the next time), while no trigger
#: is woken more than twice per poll interval however many rounds others cause.
EARLY_FRACTION = 0.5
#: Waking answered waiters: how long one turn of the event loop may take, and the group sizes it adapts in.
TURN_SECONDS = 0.004
MIN_GROUP, MAX_GROUP = 5, 500
#: Pages read per round at most: enough to find 2x the waiters' count of objects, never more than this.
MAX_PAGES = 10


@dataclass(frozen=True)
class PollKind:
    """
    A kind of object the poller watches: how to get one, and optionally how to list many newest first.

    :param name: for logs and the poller's key (``"files"``).
    :param get_one: ``await get_one(hook, object_id)``: the object (raises ``OpenAIFilesError``, 404 included).
    :param list_page: ``await list_page(hook, limit, after)``: one page ``{"data": [...], "has_more": bool}``
        newest first, ``after`` the last id of the previous page; ``None``: the API has no list (single gets).
    :param page_limit: the ``limit`` to ask for (at most the API's maximum for the list).
    """

    name: str
    get_one: GetOne
    list_page: ListPage | None = None
    page_limit: int = 100


async def _list_files(hook: OpenAIFilesAsyncHook, limit: int, after: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"order": "desc", "limit": limit}
    if after is not None:
        params["after"] = after
    return await hook.request_json("GET", "files", what="Listing files", params=params)


async def _list_batches(hook: OpenAIFilesAsyncHook, limit: int, after: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    return await hook.request_json("GET", "batches", what="Listing batches", params=params)


async def _list_fine_tuning_jobs(hook: OpenAIFilesAsyncHook, limit: int, after: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    return await hook.request_json("GET", "fine_tuning/jobs", what="Listing fine-tuning jobs", params=params)


async def _get_file(hook: OpenAIFilesAsyncHook, object_id: str) -> dict[str, Any]:
    return await hook.get_file(object_id)


async def _get_batch(hook: OpenAIFilesAsyncHook, object_id: str) -> dict[str, Any]:
    return await hook.get_batch(object_id)


async def _get_fine_tuning_job(hook: OpenAIFilesAsyncHook, object_id: str) -> dict[str, Any]:
    return await hook.get_fine_tuning_job(object_id)


async def _get_vector_store_file_batch(hook: OpenAIFilesAsyncHook, object_id: str) -> dict[str, Any]:
    vector_store_id, _, batch_id = object_id.partition("/")
    return await hook.get_vector_store_file_batch(vector_store_id, batch_id)


# Page sizes. GET /files takes limit 1..10,000 (files-openapi.yaml, openai-python FileListParams), but a
# 10,000-file page is ~2.5 MB of JSON parsed on the event loop (tens of ms): 1,000 per page keeps each parse
# to a few ms and a round of 1,000 waiters to one or two pages. GET /batches takes 1..100 (openai-python
# BatchListParams). GET /fine_tuning/jobs takes after/limit; 100 is the emulator's maximum (openai-python
# states none).
FILES = PollKind("files", _get_file, _list_files, page_limit=1000)
BATCHES = PollKind("batches", _get_batch, _list_batches, page_limit=limits.PAGE_LIMIT_MAX)
FINE_TUNING_JOBS = PollKind(
    "fine_tuning_jobs", _get_fine_tuning_job, _list_fine_tuning_jobs, page_limit=limits.PAGE_LIMIT_MAX
)
#: Vector store file batches have no list endpoint: single gets (ids ``"<vector_store_id>/<batch_id>"``), still
#: one per object per round however many triggers wait on it, and paced by the rounds.
VECTOR_STORE_FILE_BATCHES = PollKind("vector_store_file_batches", _get_vector_store_file_batch)


class _ListFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(eq=False, slots=True)
class _Waiter:
    object_id: str
    asked: float
    due: float
    answer: asyncio.Future[dict[str, Any]] = field(repr=False)

    def servable(self, now: float) -> bool:
        """Due, or close enough to its due time to be answered early (see ``EARLY_FRACTION``)."""
        return self.due - now <= EARLY_FRACTION * (self.due - self.asked)


class SharedPoller:
    """
    Answers many waiting triggers of one connection and one kind of object from as few requests as it can.

    Get it with :func:`shared_poller` (one per event loop, connection and kind); see the module docstring for
    the rounds and their guarantees.
    """

    def __init__(self, conn_id: str, kind: PollKind) -> None:
        self.conn_id = conn_id
        self.kind = kind
        self.hook = OpenAIFilesAsyncHook(conn_id)
        self.users = 0
        self.rounds = 0
        self.pages = 0
        self.single_gets = 0
        self._waiters: dict[str, list[_Waiter]] = {}
        self._wakeup = asyncio.Event()
        self._opening = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._seen_at: dict[str, int] = {}  # created_at of ids seen, to stop paging once past the oldest waiter
        self._group = MIN_GROUP * 4  # waiters woken per turn of the loop (see _deliver)
        self._listing = kind.list_page is not None  # off for good once the list is refused (4xx)

    def __repr__(self) -> str:
        return f"SharedPoller({self.conn_id!r}, {self.kind.name!r}, waiters={self.waiting()})"

    def waiting(self) -> int:
        """Waiters registered now (for tests and diagnostics)."""
        return sum(len(waiters) for waiters in self._waiters.values())

    # -- what a trigger calls ---------------------------------------------------------------------------------

    async def fetch(self, object_id: str, *, due: float | None = None, deadline: float | None = None) -> dict[str, Any]:
        """
        The object as a request sent after this call started saw it, at the latest one round after ``due``.

        :param due: ``time.monotonic()`` by which the caller wants fresh data (default: now).
        :param deadline: ``time.monotonic()`` after which the caller stops waiting: :class:`OpenAIFilesTimeoutError`.
        :raises OpenAIFilesError: the object's own ``GET`` failed for good (a 404 for a deleted object...).
        """
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        waiter = _Waiter(object_id, now, max(now, now if due is None else due), loop.create_future())
        self._waiters.setdefault(object_id, []).append(waiter)
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"openai-files poller {self.conn_id}/{self.kind.name}")
        # The deadline is a timer on the loop, not asyncio.wait: no set, future and callbacks per poll.
        timer = loop.call_later(max(0.0, deadline - now), self._expire, waiter) if deadline is not None else None
        try:
            return await waiter.answer
        finally:
            if timer is not None:
                timer.cancel()
            self._forget(waiter)

    @staticmethod
    def _expire(waiter: _Waiter) -> None:
        if not waiter.answer.done():
            waiter.answer.set_exception(OpenAIFilesTimeoutError("time ran out waiting for the next poll"))

    def _forget(self, waiter: _Waiter) -> None:
        waiters = self._waiters.get(waiter.object_id)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[waiter.object_id]
        if not waiter.answer.done():
            waiter.answer.cancel()

    # -- the rounds -------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while self._waiters:
            earliest = min(w.due for waiters in self._waiters.values() for w in waiters)
            delay = earliest - time.monotonic()
            if delay > 0:
                self._wakeup.clear()
                # asyncio.TimeoutError: not yet the builtin TimeoutError on Python 3.10.
                with contextlib.suppress(asyncio.TimeoutError):  # a new waiter may be due sooner: look again
                    await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
                continue
            await asyncio.sleep(GATHER_SECONDS)
            try:
                await self._round()
            except Exception as err:  # a bug, not an API answer: every waiter hears of it rather than hang
                log.exception("Poller %s/%s failed", self.conn_id, self.kind.name)
                for waiters in list(self._waiters.values()):
                    for waiter in waiters:
                        if not waiter.answer.done():
                            waiter.answer.set_exception(err)
                await asyncio.sleep(0)  # let them leave before the next look

    async def _round(self) -> None:
        started = time.monotonic()
        # The waiters of this round: registered before its first request (later ones wait for the next), and
        # due or nearly so.
        now = time.monotonic()
        batch: dict[str, list[_Waiter]] = {}
        for object_id, waiters in self._waiters.items():
            servable = [w for w in waiters if w.servable(now)]
            if servable:
                batch[object_id] = servable
        if not batch:  # the waiter that was due left (cancelled) during the gathering pause
            return
        self.rounds += 1
        try:
            found = await self._read_pages(set(batch)) if self._listing else {}
        except _ListFailed as failed:
            for waiters in batch.values():
                for waiter in waiters:
                    if waiter.due <= now and not waiter.answer.done():
                        waiter.answer.set_exception(failed.error)
            return
        await self._deliver([(waiter, obj) for object_id, obj in found.items() for waiter in batch.pop(object_id)])
        # Not on a page: a GET of their own, for the waiters that are due (the others wait for their turn).
        now = time.monotonic()
        singles = [object_id for object_id, waiters in batch.items() if any(w.due <= now for w in waiters)]
        if singles:
            gate = asyncio.Semaphore(SINGLE_GETS_AT_ONCE)
            await asyncio.gather(*(self._single(object_id, batch[object_id], gate) for object_id in singles))
        log.debug(
            "Poller %s/%s: round %d answered %d from %d page(s), %d single get(s), in %.2fs",
            self.conn_id,
            self.kind.name,
            self.rounds,
            len(found),
            self.pages,
            len(singles),
            time.monotonic() - started,
        )

    async def _read_pages(self, wanted: set[str]) -> dict[str, dict[str, Any]]:
        """Pages newest first until every wanted id was seen, the list ends, or the page budget is spent."""
        assert self.kind.list_page is not None
        limit = self.kind.page_limit
        budget = min(MAX_PAGES, max(1, math.ceil(2 * len(wanted) / limit)))
        if len(self._seen_at) > 2 * len(wanted) + 1000:  # forget the ids nobody waits for any more
            self._seen_at = {i: at for i, at in self._seen_at.items() if i in wanted}
        known = [self._seen_at[i] for i in wanted if i in self._seen_at]
        oldest = min(known) if len(known) == len(wanted) else None  # every waiter seen once: stop past the oldest
        found: dict[str, dict[str, Any]] = {}
        after: str | None = None
        for read in range(budget):
            try:
                page = await self.kind.list_page(self.hook, limit, after)
            except OpenAIFilesError as err:
                status = getattr(err, "http_status", None)
                if status is not None and 400 <= status < 500 and status not in (401, 429):
                    # Refused (a flavour or a key that cannot list): each waiter gets its own GET, now and later.
                    self._listing = False
                    log.warning(
                        "Listing %s for connection %r was refused (%s); polling each object from now on",
                        self.kind.name,
                        self.conn_id,
                        err,
                    )
                elif after is None:
                    # What failed the list (the key, TLS, the network, retries used up) would fail each GET too.
                    raise _ListFailed(err) from err
                else:
                    log.warning("Listing %s failed after %d page(s) (%s); polling the rest", self.kind.name, read, err)
                break
            self.pages += 1
            data = page.get("data") or []
            for obj in data:
                object_id = obj.get("id")
                if object_id in wanted:
                    found[object_id] = obj
                    if isinstance(obj.get("created_at"), int):
                        self._seen_at[object_id] = obj["created_at"]
            if len(found) == len(wanted) or not page.get("has_more") or not data:
                break
            last_created = data[-1].get("created_at")
            if oldest is not None and isinstance(last_created, int) and last_created < oldest:
                break
            after = data[-1].get("id")
        return found

    async def _single(self, object_id: str, waiters: list[_Waiter], gate: asyncio.Semaphore) -> None:
        async with gate:
            if all(w.answer.done() for w in waiters):  # every waiter left (cancelled, or its deadline passed)
                return
            self.single_gets += 1
            try:
                obj = await self.kind.get_one(self.hook, object_id)
            except OpenAIFilesError as err:
                for waiter in waiters:
                    if not waiter.answer.done():
                        waiter.answer.set_exception(err)
                return
        if isinstance(obj.get("created_at"), int):
            self._seen_at[object_id] = obj["created_at"]
        await self._deliver([(waiter, obj) for waiter in waiters])

    async def _deliver(self, answers: list[tuple[_Waiter, dict[str, Any]]]) -> None:
        """
        Wake the waiters a few at a time, so that the event loop turns between two groups.

        Each answer wakes a trigger that judges the object, logs, maybe fires its event (and Airflow logs that):
        a thousand of them in one turn of the loop would hold it for hundreds of milliseconds, and every other
        trigger of the triggerer would wait that long. The group size adapts so a turn stays near
        ``TURN_SECONDS``.
        """
        index = 0
        while index < len(answers):
            for waiter, obj in answers[index : index + self._group]:
                if not waiter.answer.done():
                    waiter.answer.set_result(obj)
            index += self._group
            if index < len(answers):
                began = time.monotonic()
                await asyncio.sleep(0)  # the woken triggers run now, before this resumes
                took = time.monotonic() - began
                if took > TURN_SECONDS:
                    self._group = max(MIN_GROUP, self._group // 2)
                elif took < TURN_SECONDS / 2:
                    self._group = min(MAX_GROUP, self._group * 2)

    # -- lifetime ---------------------------------------------------------------------------------------------

    async def _open(self) -> None:
        # One at a time: triggers starting together must not each take a reference on the shared client.
        async with self._opening:
            if self.users == 0:
                await self.hook.__aenter__()  # reads the connection; an error reaches this trigger only
            self.users += 1

    async def _close(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        pool = _POLLERS.get(asyncio.get_running_loop(), {})
        if pool.get((self.conn_id, self.kind.name)) is self:
            del pool[(self.conn_id, self.kind.name)]
        task, self._task = self._task, None
        try:
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})  # its request ends before the client closes
        finally:
            # shield: a trigger cancelled as it leaves must still give the shared client back.
            await asyncio.shield(self.hook.__aexit__(None, None, None))


# Per event loop (the triggerer has one; tests start many), per connection id and kind.
_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


class shared_poller:
    """Hold the event loop's shared poller of ``(conn_id, kind)`` for the duration of the ``async with``."""

    def __init__(self, conn_id: str, kind: PollKind) -> None:
        self.conn_id = conn_id
        self.kind = kind
        self.poller: SharedPoller | None = None

    async def __aenter__(self) -> SharedPoller:
        pool = _POLLERS.setdefault(asyncio.get_running_loop(), {})
        poller = pool.get((self.conn_id, self.kind.name))
        if poller is None:
            poller = pool[(self.conn_id, self.kind.name)] = SharedPoller(self.conn_id, self.kind)
        await poller._open()
        self.poller = poller
        return poller

    async def __aexit__(self, *exc_info: object) -> None:
        if self.poller is not None:
            poller, self.poller = self.poller, None
            await poller._close()


def shared_pollers() -> dict[tuple[str, str], SharedPoller]:
    """The pollers open in the running event loop, by (connection id, kind name); for tests and diagnostics."""
    return dict(_POLLERS.get(asyncio.get_running_loop(), {}))
