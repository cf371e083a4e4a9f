"""OpenAIFileTrigger: one terminal event, hook-equivalent auth and retries, non-blocking, serializable."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.triggers import OpenAIFileTrigger
from tests.support.connections import set_connection, use_emulator
from tests.support.emulators import FILE_STATUS_ERRORS, FILES_STAY_UPLOADED, PROCESSING_DELAY
from tests.support.task_helpers import fine_tune_lines
from tests.support.triggers import collect, run_trigger


def put(body: bytes | None = None) -> dict[str, Any]:
    return OpenAIFilesHook().upload_file(
        io.BytesIO(body or fine_tune_lines()), "fine-tune", filename="t.jsonl", validate=False
    )


@FILES_STAY_UPLOADED
def test_serialize_round_trips_without_the_key(openai_files_connection: Any) -> None:
    trigger = OpenAIFileTrigger("file-abc", target_status="uploaded", poll_interval=2, timeout=60)
    path, kwargs = trigger.serialize()
    assert path == "airflow_openai_files.triggers.OpenAIFileTrigger"
    assert set(kwargs) == {"file_id", "openai_conn_id", "target_status", "poll_interval", "timeout", "deadline"}
    assert openai_files_connection.api_key not in json.dumps(kwargs)
    again = OpenAIFileTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)


def test_rejects_unsafe_ids_and_targets() -> None:
    with pytest.raises(OpenAIFilesValidationError):
        OpenAIFileTrigger("../files")
    with pytest.raises(ValueError):
        OpenAIFileTrigger("file-a", target_status="done")


@FILES_STAY_UPLOADED
def test_success_after_polling(openai_files_connection: Any) -> None:
    created = put()

    async def scenario() -> list[dict[str, Any]]:
        trigger = OpenAIFileTrigger(created["id"], poll_interval=0.05, timeout=30)
        task = asyncio.ensure_future(collect(trigger))
        # Let the trigger see "uploaded" at least twice, then let processing finish.
        deadline = time.monotonic() + 10
        while sum(1 for m, _, _ in openai_files_connection.request_log() if m == "GET") < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        openai_files_connection.advance_clock(PROCESSING_DELAY + 1)
        return await asyncio.wait_for(task, 10)

    events = asyncio.run(scenario())
    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["file"]["id"] == created["id"] and events[0]["file"]["status"] == "processed"


@FILE_STATUS_ERRORS
def test_error_status_event_carries_status_details(openai_files_connection: Any) -> None:
    created = put(fine_tune_lines(4))
    events = run_trigger(OpenAIFileTrigger(created["id"], poll_interval=0.05, timeout=10))
    assert [e["status"] for e in events] == ["error"]
    assert "at least 10 examples" in events[0]["message"]
    assert events[0]["file"]["status"] == "error"


def test_not_found_event(openai_files_connection: Any) -> None:
    events = run_trigger(OpenAIFileTrigger("file-gone", timeout=10))
    assert [e["status"] for e in events] == ["error"]
    assert "file-gone does not exist (HTTP 404" in events[0]["message"]


@FILES_STAY_UPLOADED
def test_timeout_uses_monotonic_clock(openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    created = put()
    started = time.monotonic()
    events = run_trigger(OpenAIFileTrigger(created["id"], poll_interval=0.05, timeout=0.3))
    assert [e["status"] for e in events] == ["timeout"]
    assert events[0]["file"]["status"] == "uploaded"
    assert 0.3 <= time.monotonic() - started < 5


@FILES_STAY_UPLOADED
def test_deadline_caps_a_recreated_trigger(openai_files_connection: Any) -> None:
    created = put()
    # As if re-created after a triggerer restart once the sensor's overall deadline had passed.
    events = run_trigger(OpenAIFileTrigger(created["id"], timeout=3600, deadline=time.time() - 1))
    assert [e["status"] for e in events] == ["timeout"]


@FILES_STAY_UPLOADED
def test_retries_like_the_hook(openai_files_connection: Any) -> None:
    created = put()
    openai_files_connection.advance_clock(PROCESSING_DELAY + 1)
    openai_files_connection.add_fault(
        method="GET", path="/v1/files*", status=503, headers={"retry-after-ms": "20"}, times=2
    )
    openai_files_connection.add_fault(
        method="GET", path="/v1/files*", status=429, headers={"retry-after": "0"}, times=1
    )
    events = run_trigger(OpenAIFileTrigger(created["id"], timeout=30))
    assert [e["status"] for e in events] == ["success"]
    statuses = [s for m, p, s in openai_files_connection.request_log() if m == "GET" and p.startswith("/v1/files")]
    assert statuses == [503, 503, 429, 200]


@FILES_STAY_UPLOADED
def test_gives_up_after_max_retries(openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    use_emulator(monkeypatch, openai_files_connection, max_retries=1)
    created = put()
    openai_files_connection.add_fault(
        method="GET", path="/v1/files*", status=500, headers={"retry-after-ms": "1"}, times=5
    )
    events = run_trigger(OpenAIFileTrigger(created["id"], timeout=30))
    assert [e["status"] for e in events] == ["error"]
    assert "gave up after 2 attempt(s)" in events[0]["message"] and "status=500" in events[0]["message"]


@FILES_STAY_UPLOADED
def test_never_retries_quota_errors(openai_files_connection: Any) -> None:
    created = put()
    openai_files_connection.add_fault(
        method="GET",
        path="/v1/files*",
        status=429,
        error={
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        },
    )
    events = run_trigger(OpenAIFileTrigger(created["id"], timeout=30))
    assert [e["status"] for e in events] == ["error"] and "quota" in events[0]["message"]
    assert len(openai_files_connection.request_log()) == 2  # the upload and one GET


def test_wrong_key_is_not_retried(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_openai_files.emulator import Emulator

    with Emulator(data_dir=tmp_path / "emu", api_key="sk-test-right") as emulator:
        set_connection(monkeypatch, host=emulator.base_url, password="sk-test-wrong")
        events = run_trigger(OpenAIFileTrigger("file-abc", timeout=30))
        assert [e["status"] for e in events] == ["error"] and "HTTP 401" in events[0]["message"]
        assert "sk-test-wrong" not in events[0]["message"]
        assert len(emulator.request_log()) == 1


@FILES_STAY_UPLOADED
def test_sends_the_hooks_headers(openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from airflow_openai_files.client.settings import USER_AGENT

    use_emulator(monkeypatch, openai_files_connection, organization="org-1", project="proj-1")
    created = put()
    openai_files_connection.advance_clock(PROCESSING_DELAY + 1)
    seen: list[httpx.Headers] = []
    original = httpx.AsyncClient.send

    async def spy(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        seen.append(request.headers)
        return await original(self, request, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", spy)
    assert run_trigger(OpenAIFileTrigger(created["id"]))[0]["status"] == "success"
    headers = seen[0]
    assert headers["authorization"] == f"Bearer {openai_files_connection.api_key}"
    assert headers["openai-organization"] == "org-1" and headers["openai-project"] == "proj-1"
    assert headers["user-agent"] == USER_AGENT


@FILES_STAY_UPLOADED
def test_missing_or_bad_connection_is_an_error_event(
    openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = run_trigger(OpenAIFileTrigger("file-a", openai_conn_id="not_defined_anywhere"))
    assert [e["status"] for e in events] == ["error"] and "not_defined_anywhere" in events[0]["message"]
    use_emulator(monkeypatch, openai_files_connection, timeout="soon")
    events = run_trigger(OpenAIFileTrigger("file-a"))
    assert [e["status"] for e in events] == ["error"] and "'timeout'" in events[0]["message"]


@FILES_STAY_UPLOADED
def test_never_blocks_the_event_loop(openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import BaseHook

    def sync_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the trigger must use BaseHook.aget_connection")

    created = put()
    monkeypatch.setattr(BaseHook, "get_connection", sync_lookup)
    openai_files_connection.add_fault(method="GET", path="/v1/files*", delay=0.4, times=3)

    async def scenario() -> tuple[list[dict[str, Any]], float]:
        worst = 0.0
        task = asyncio.ensure_future(collect(OpenAIFileTrigger(created["id"], poll_interval=0.05, timeout=1.0)))
        last = time.monotonic()
        while not task.done():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            worst, last = max(worst, now - last), now
        return task.result(), worst

    events, worst_gap = asyncio.run(scenario())
    assert [e["status"] for e in events] == ["timeout"]
    assert worst_gap < 0.2, f"the event loop was blocked for {worst_gap:.2f}s"


@FILES_STAY_UPLOADED
def test_cancellation_closes_cleanly(openai_files_connection: Any) -> None:
    created = put()

    async def scenario() -> None:
        task = asyncio.ensure_future(collect(OpenAIFileTrigger(created["id"], poll_interval=5, timeout=60)))
        deadline = time.monotonic() + 10
        while not any(m == "GET" for m, _, _ in openai_files_connection.request_log()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_tls_context_is_built_once_and_shared() -> None:
    from airflow_openai_files.client.async_transport import _ssl_context

    async def contexts() -> list[Any]:
        return [await _ssl_context(True), await _ssl_context(True), await _ssl_context(False)]

    first, second, off = asyncio.run(contexts())
    assert first is second and off is False


@FILES_STAY_UPLOADED
def test_unusable_ca_bundle_is_an_error_event(
    openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    use_emulator(monkeypatch, openai_files_connection, verify=str(tmp_path / "missing-ca.pem"))
    events = run_trigger(OpenAIFileTrigger("file-a"))
    assert [e["status"] for e in events] == ["error"] and "'verify'" in events[0]["message"]


def test_triggers_starting_together_share_one_connection_lookup(
    openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import BaseHook

    created = put()
    calls: list[str] = []
    original = BaseHook.aget_connection

    async def counting(conn_id: str) -> Any:
        calls.append(conn_id)
        return await original(conn_id)

    monkeypatch.setattr(BaseHook, "aget_connection", counting)

    async def many() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(collect(OpenAIFileTrigger(created["id"])) for _ in range(20)))

    results = asyncio.run(many())
    assert [events[0]["status"] for events in results] == ["success"] * 20
    assert calls == ["openai_files_default"]
    assert run_trigger(OpenAIFileTrigger(created["id"]))[0]["status"] == "success"
    assert len(calls) == 2  # nothing is cached once the lookup is over: edits to the connection apply


@FILES_STAY_UPLOADED
def test_cancelled_mid_request_stops(openai_files_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    created = put()
    openai_files_connection.add_fault(method="GET", path="/v1/files*", delay=5.0)
    original = httpx.AsyncClient.send

    async def scenario() -> float:
        sent = asyncio.Event()

        async def spy(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            sent.set()
            return await original(self, request, **kwargs)

        monkeypatch.setattr(httpx.AsyncClient, "send", spy)
        task = asyncio.ensure_future(collect(OpenAIFileTrigger(created["id"], poll_interval=1, timeout=60)))
        await asyncio.wait_for(sent.wait(), 10)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0


@FILES_STAY_UPLOADED
def test_slow_answer_is_cut_at_the_deadline(openai_files_connection: Any) -> None:
    created = put()
    openai_files_connection.add_fault(method="GET", path="/v1/files*", delay=5.0)
    started = time.monotonic()
    events = run_trigger(OpenAIFileTrigger(created["id"], timeout=0.5))
    assert [e["status"] for e in events] == ["timeout"]
    assert time.monotonic() - started < 3
