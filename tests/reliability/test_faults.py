"""
Faults the real service and networks produce, played by the emulator (or a loopback TCP front door)
against every entry point, through the hook and through the operators.

Every test checks the end state on the emulator: exactly the expected files, each byte-identical
(sha256 of its stored content), and for downloads the destination directory holds exactly the
finished file (or nothing), never a ``.part`` leftover.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.exceptions import OpenAIFilesError
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.reliability.helpers import (
    SECRET_KEY,
    FrontDoor,
    Waits,
    assert_no_key,
    part_files,
    stored,
    tune,
    v1_log,
)
from tests.support.connections import set_connection
from tests.support.files import sha256
from tests.support.task_helpers import make_context


class World:
    """A target file, a bystander that must never change, an upload source and a download folder."""

    def __init__(self, emu: Emulator, seed: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
        self.emu = emu
        self.target = seed(name="target-1.png")
        self.bystander = seed(name="bystander.png")
        self.source = tmp_path / "upload" / "payload.bin"
        self.source.parent.mkdir()
        self.source.write_bytes(bytes(range(255, -1, -1)) * 300 + b"\x00\r\n\x1a payload")
        self.downloads = tmp_path / "downloads"
        self.downloads.mkdir()
        self.dest = self.downloads / "copy.bin"
        self.before = stored(emu)
        self.mark = len(emu.request_log())
        self.waits = Waits()

    # -- running an entry point ------------------------------------------------------------------------

    def hook(self, **kwargs: Any) -> OpenAIFilesHook:
        hook = OpenAIFilesHook(**kwargs)
        tune(hook, self.waits)
        return hook

    def execute(self, operator: Any, **context_kwargs: Any) -> Any:
        tune(operator.hook, self.waits)
        try:
            result = operator.execute(make_context(**context_kwargs))
        finally:
            operator.hook.close()
        assert_no_key(result)  # what would be pushed to XCom
        return result

    # -- observing --------------------------------------------------------------------------------------

    def log(self) -> list[tuple[str, str, int]]:
        return v1_log(self.emu, self.mark)

    def hits(self, method: str, path: str) -> list[int]:
        """Statuses of the requests on one endpoint since the world was built (0: no answer sent)."""
        return [status for m, p, status in self.log() if m == method and p == path]

    def assert_unchanged(self) -> None:
        assert stored(self.emu) == self.before
        assert sorted(p.name for p in self.downloads.iterdir()) == []


# -- entry points: how to fault them, run them, and what success leaves behind ----------------------------


@dataclass
class Entry:
    name: str
    method: str
    path: Callable[[World], str]
    run: Callable[[World], Any]
    check: Callable[[World, Any], None]
    operator: bool = False
    tags: set[str] = field(default_factory=set)


def _check_uploaded(w: World, result: dict[str, Any]) -> None:
    after = stored(w.emu)
    new = set(after) - set(w.before)
    assert new == {result["id"]}, f"expected exactly one new file, got {new}"
    assert after[result["id"]] == sha256(w.source)
    assert {k: v for k, v in after.items() if k != result["id"]} == w.before
    assert result["filename"] == "payload.bin" and result["bytes"] == w.source.stat().st_size


def _check_downloaded(w: World, result: str) -> None:
    assert result == str(w.dest)
    assert sha256(w.dest) == w.target["sha256"]
    assert sorted(p.name for p in w.downloads.iterdir()) == ["copy.bin"]
    assert stored(w.emu) == w.before


def _check_deleted(w: World, result: Any) -> None:
    assert stored(w.emu) == {k: v for k, v in w.before.items() if k != w.target["id"]}


def _check_retrieved(w: World, result: dict[str, Any]) -> None:
    assert (result["id"], result["bytes"], result["filename"]) == (
        w.target["id"],
        len(w.target["data"]),
        "target-1.png",
    )
    assert stored(w.emu) == w.before


def _check_listed(w: World, result: list[dict[str, Any]]) -> None:
    assert sorted(item["id"] for item in result) == sorted(w.before)
    assert stored(w.emu) == w.before


def _upload_op(w: World) -> Any:
    from airflow_openai_files.operators import OpenAIUploadFileOperator

    return w.execute(OpenAIUploadFileOperator(task_id="upload", file_path=str(w.source), purpose="user_data"))


def _download_op(w: World) -> Any:
    from airflow_openai_files.operators import OpenAIDownloadFileOperator

    return w.execute(OpenAIDownloadFileOperator(task_id="download", file_id=w.target["id"], destination=str(w.dest)))


def _delete_op(w: World) -> Any:
    from airflow_openai_files.operators import OpenAIDeleteFileOperator

    result = w.execute(OpenAIDeleteFileOperator(task_id="delete", file_id=w.target["id"]))
    assert result == [w.target["id"]]
    return result


def _cleanup_op(w: World) -> Any:
    from airflow_openai_files.operators import OpenAIFilesCleanupOperator

    result = w.execute(OpenAIFilesCleanupOperator(task_id="cleanup", filename_glob="target-*"))
    assert result == [w.target["id"]]
    return result


def _delete_hook(w: World) -> Any:
    result = w.hook().delete_file(w.target["id"])
    assert result["deleted"] is True
    return result


ENTRIES = [
    Entry(
        "hook.upload_file",
        "POST",
        lambda w: "/v1/files",
        lambda w: w.hook().upload_file(w.source, "user_data"),
        _check_uploaded,
        tags={"upload"},
    ),
    Entry(
        "hook.download_file",
        "GET",
        lambda w: f"/v1/files/{w.target['id']}/content",
        lambda w: w.hook().download_file(w.target["id"], w.dest),
        _check_downloaded,
        tags={"download"},
    ),
    Entry(
        "hook.get_file",
        "GET",
        lambda w: f"/v1/files/{w.target['id']}",
        lambda w: w.hook().get_file(w.target["id"]),
        _check_retrieved,
    ),
    Entry("hook.list_files", "GET", lambda w: "/v1/files", lambda w: list(w.hook().list_files()), _check_listed),
    Entry("hook.delete_file", "DELETE", lambda w: f"/v1/files/{w.target['id']}", _delete_hook, _check_deleted),
    Entry("OpenAIUploadFileOperator", "POST", lambda w: "/v1/files", _upload_op, _check_uploaded, True, {"upload"}),
    Entry(
        "OpenAIDownloadFileOperator",
        "GET",
        lambda w: f"/v1/files/{w.target['id']}/content",
        _download_op,
        _check_downloaded,
        True,
        {"download"},
    ),
    Entry(
        "OpenAIDeleteFileOperator", "DELETE", lambda w: f"/v1/files/{w.target['id']}", _delete_op, _check_deleted, True
    ),
    Entry("OpenAIFilesCleanupOperator", "GET", lambda w: "/v1/files", _cleanup_op, _check_deleted, True),
]
ENTRY_IDS = [entry.name for entry in ENTRIES]


@pytest.fixture
def world(emu: Emulator, seed: Callable[..., dict[str, Any]], tmp_path: Path) -> World:
    return World(emu, seed, tmp_path)


# -- retried HTTP answers --------------------------------------------------------------------------------


def _backoff_wait(w: float) -> bool:
    # tune(): backoff_base 0.01, so the first retry waits 0.01 * (1 - 0.25 * random())
    return 0.0075 <= w <= 0.01


RETRIED = {
    "429-retry-after-seconds": (429, lambda: {"retry-after": "2"}, lambda w: w == 2.0),
    "429-retry-after-ms": (429, lambda: {"retry-after-ms": "1500"}, lambda w: w == 1.5),
    "429-retry-after-http-date": (
        429,
        lambda: {"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)},
        lambda w: 28.0 <= w <= 30.0,
    ),
    "408": (408, dict, _backoff_wait),
    "409": (409, dict, _backoff_wait),
    "500": (500, dict, _backoff_wait),
    "502": (502, dict, _backoff_wait),
    "503": (503, dict, _backoff_wait),
    "504": (504, dict, _backoff_wait),
}


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
@pytest.mark.parametrize("fault", list(RETRIED))
def test_retried_status_is_survived(world: World, entry: Entry, fault: str) -> None:
    status, headers, wait_ok = RETRIED[fault]
    path = entry.path(world)
    world.emu.add_fault(method=entry.method, path=path, status=status, headers=headers())

    result = entry.run(world)

    entry.check(world, result)
    assert world.hits(entry.method, path) == [status, 200]
    assert len(world.waits.seconds) == 1 and wait_ok(world.waits.seconds[0]), world.waits.seconds
    if status == 429 and "upload" in entry.tags:
        # a 429 was refused before processing: no need to look for a file it created
        assert ("GET", "/v1/files", 200) not in world.log()


# -- answers that must not be retried -------------------------------------------------------------------

NOT_RETRIED = {
    "503-x-should-retry-false": (503, {"x-should-retry": "false"}, None, "x-should-retry: false"),
    "429-insufficient-quota": (
        429,
        {"retry-after": "1"},
        {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        },
        "quota",
    ),
}


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
@pytest.mark.parametrize("fault", list(NOT_RETRIED))
def test_final_answer_is_not_retried(world: World, entry: Entry, fault: str) -> None:
    status, headers, error, message = NOT_RETRIED[fault]
    path = entry.path(world)
    world.emu.add_fault(method=entry.method, path=path, status=status, headers=headers, error=error, times=5)

    with pytest.raises(OpenAIFilesError) as info:
        entry.run(world)

    err = info.value
    assert message in str(err)
    assert err.http_status == status and str(err.request_id).startswith("req_")
    assert_no_key(err, err.__dict__)
    assert world.hits(entry.method, path) == [status], "exactly one request: no retry"
    assert world.waits.seconds == []
    world.assert_unchanged()
    if "upload" in entry.tags:
        assert world.log() == [("POST", "/v1/files", status)]


# -- the network: refused, connect timeout, read timeout ------------------------------------------------

NETWORK = {
    "connection-refused": FrontDoor.refuse,
    "connect-timeout": FrontDoor.blackhole,
    "read-timeout": FrontDoor.silent,
}


@pytest.fixture
def door(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``openai_files_default`` goes through a front door; timeouts short so the test stays fast."""
    front = FrontDoor(emu.port)
    set_connection(
        monkeypatch,
        host=front.base_url,
        password=SECRET_KEY,
        extra={"timeout": 0.5, "connect_timeout": 0.3, "max_retries": 2},
    )
    yield front
    front.close()


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
@pytest.mark.parametrize("mode", list(NETWORK))
def test_network_fault_is_survived(world: World, door: FrontDoor, entry: Entry, mode: str) -> None:
    NETWORK[mode](door)
    world.waits.on_wait.append(lambda seconds: door.forward())  # the network recovers before the retry

    result = entry.run(world)

    entry.check(world, result)
    assert len(world.waits.seconds) == 1
    assert world.hits(entry.method, entry.path(world)) == [200]
    if "upload" in entry.tags and mode != "read-timeout":
        # the first attempt never reached the server: no reconciliation needed, and none was made
        assert world.log() == [("POST", "/v1/files", 200)]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.tags], ids=[e.name for e in ENTRIES if e.tags])
@pytest.mark.parametrize("mode", list(NETWORK))
def test_network_down_for_good_fails_cleanly(world: World, door: FrontDoor, entry: Entry, mode: str) -> None:
    NETWORK[mode](door)

    with pytest.raises(OpenAIFilesError) as info:
        entry.run(world)

    text = str(info.value)
    assert "after 3 attempt(s)" in text, text  # max_retries 2 from the connection
    assert {"connection-refused": "connection error", "connect-timeout": "connect timeout"}.get(
        mode, "read timeout"
    ) in text
    if mode == "read-timeout" and "upload" in entry.tags:
        # the upload may have reached the server: before re-sending it lists files to check, and it is
        # that listing (with its own budget) that fails; the upload is never re-sent blind
        assert "checking for it failed" in text and "not re-sending it blind" in text, text
        assert len(world.waits.seconds) == 3
    else:
        assert len(world.waits.seconds) == 2
    assert_no_key(info.value)
    world.assert_unchanged()
    assert world.log() == []


SLOW_SERVER = [pytest.param(e, id=e.name) for e in ENTRIES]


@pytest.mark.parametrize("entry", SLOW_SERVER)
def test_slow_server_read_timeout_is_survived(world: World, entry: Entry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator holds the first request longer than the connection's timeout (a ``delay`` fault)."""
    set_connection(monkeypatch, host=world.emu.base_url, password=SECRET_KEY, extra={"timeout": 0.4, "max_retries": 3})
    path = entry.path(world)
    world.emu.add_fault(method=entry.method, path=path, delay=0.9)

    result = entry.run(world)

    # The held request is logged when the emulator finally answers it (to a client long gone): wait
    # for that, so that what it did (e.g. an upload finishing late) is part of the end state.
    # An upload is not sent again (the hook finds the late file instead); everything else is retried once.
    expected = 1 if "upload" in entry.tags else 2
    deadline = time.monotonic() + 5
    while len(world.hits(entry.method, path)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    assert len(world.waits.seconds) == 1
    entry.check(world, result)


# -- a download body cut short ------------------------------------------------------------------------

DOWNLOADS = [e for e in ENTRIES if "download" in e.tags]


@pytest.mark.parametrize("entry", DOWNLOADS, ids=[e.name for e in DOWNLOADS])
def test_truncated_download_is_retried_and_never_published_early(world: World, entry: Entry) -> None:
    path = entry.path(world)
    world.emu.add_fault(method="GET", path=path, action="truncate_body", times=2)
    seen_at_waits: list[bool] = []
    world.waits.on_wait.append(lambda s: seen_at_waits.append(world.dest.exists()))

    result = entry.run(world)

    entry.check(world, result)
    assert seen_at_waits == [False, False], "destination visible before the download completed"
    assert world.hits("GET", path) == [200, 200, 200]  # headers were sent, then the body was cut
    assert part_files(world.downloads) == []


@pytest.mark.parametrize("entry", DOWNLOADS, ids=[e.name for e in DOWNLOADS])
def test_download_stalling_mid_body_is_retried(world: World, door: FrontDoor, entry: Entry) -> None:
    """The body stops arriving part-way while the connection stays open: a read timeout mid-body."""
    door.stall(after=4000)  # past the small retrieve answer, into the 10 KiB body
    seen_at_waits: list[bool] = []
    world.waits.on_wait.append(lambda s: (seen_at_waits.append(world.dest.exists()), door.forward()))

    result = entry.run(world)

    entry.check(world, result)
    assert seen_at_waits == [False]
    assert world.hits("GET", entry.path(world)) == [200, 200], "the first body stalled part-way"
    assert part_files(world.downloads) == []


@pytest.mark.parametrize("entry", DOWNLOADS, ids=[e.name for e in DOWNLOADS])
def test_download_cut_short_every_time_leaves_nothing(world: World, entry: Entry) -> None:
    world.emu.add_fault(method="GET", path=entry.path(world), action="truncate_body", times=6)

    with pytest.raises(OpenAIFilesError, match="connection dropped while reading the answer") as info:
        entry.run(world)

    assert "after 6 attempt(s)" in str(info.value)
    world.assert_unchanged()
    assert not world.dest.exists()


# -- the ambiguous upload ----------------------------------------------------------------------------------

UPLOADS = [e for e in ENTRIES if "upload" in e.tags]


@pytest.mark.parametrize("entry", UPLOADS, ids=[e.name for e in UPLOADS])
def test_ambiguous_upload_leaves_exactly_one_file(world: World, entry: Entry) -> None:
    """The server reads the whole body and creates the file, then the connection drops unanswered."""
    world.emu.add_fault(method="POST", path="/v1/files", action="close_after_body")

    result = entry.run(world)

    entry.check(world, result)  # exactly one new file, and it is the one returned
    assert world.log() == [("POST", "/v1/files", 0), ("GET", "/v1/files", 200)], "reconciled, not re-sent"


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "POST", "path": "/v1/uploads", "action": "close_after_body"},
        {"method": "POST", "path": "/v1/uploads/*/parts", "action": "close_after_body", "times": 2},
        {"method": "POST", "path": "/v1/uploads/*/complete", "action": "close_after_body"},
        {"method": "POST", "path": "/v1/uploads/*/parts", "status": 503},
        {"method": "POST", "path": "/v1/uploads/*/complete", "status": 500},
    ],
    ids=["create-dropped", "parts-dropped", "complete-dropped", "part-503", "complete-500"],
)
def test_uploads_api_faults_leave_exactly_one_file(world: World, fault: dict[str, Any]) -> None:
    """The Uploads API (large files, forced here with small parts) under the same faults."""
    world.emu.add_fault(**fault)
    hook = world.hook(part_size=64 * 1024, max_concurrency=2)

    result = hook.upload_file(world.source, "user_data", multipart=True)

    _check_uploaded(world, result)
    assert len(world.waits.seconds) >= 1


# -- the same guarantee across Airflow task retries ------------------------------------------------------


def _upload_operator(w: World) -> Any:
    from airflow_openai_files.operators import OpenAIUploadFileOperator

    return OpenAIUploadFileOperator(task_id="upload", file_path=str(w.source), purpose="user_data")


def test_task_retry_after_dropped_answer_reuses_the_file(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Try 1 has no retry budget left when the answer is lost; try 2 must find the file, not re-upload."""
    set_connection(monkeypatch, host=world.emu.base_url, password=SECRET_KEY, extra={"max_retries": 0})
    run_started = time.time() - 5
    world.emu.add_fault(method="POST", path="/v1/files", action="close_after_body")

    with pytest.raises(OpenAIFilesError):
        world.execute(_upload_operator(world), try_number=1, run_start=run_started)
    created = set(stored(world.emu)) - set(world.before)
    assert len(created) == 1, "the first try did create the file on the server"

    result = world.execute(_upload_operator(world), try_number=2, run_start=run_started)

    _check_uploaded(world, result)
    assert {result["id"]} == created
    assert world.hits("POST", "/v1/files") == [0], "the second try did not upload again"


def test_task_retry_after_worker_crash_reuses_the_file(world: World) -> None:
    """Try 1 uploaded the file and then died before returning (no XCom); try 2 returns that file."""
    run_started = time.time() - 5
    crashing = _upload_operator(world)
    real_upload = crashing.hook.upload_file

    def upload_then_die(*args: Any, **kwargs: Any) -> Any:
        real_upload(*args, **kwargs)
        raise SystemExit("worker killed")

    crashing.hook.upload_file = upload_then_die
    with pytest.raises(SystemExit):
        world.execute(crashing, try_number=1, run_start=run_started)

    result = world.execute(_upload_operator(world), try_number=2, run_start=run_started)

    _check_uploaded(world, result)
    assert world.hits("POST", "/v1/files") == [200]


def test_task_retry_after_refused_upload_uploads_once(world: World) -> None:
    """Try 1 failed without creating anything: try 2 uploads, exactly once."""
    run_started = time.time() - 5
    world.emu.add_fault(method="POST", path="/v1/files", status=503, headers={"x-should-retry": "false"})
    with pytest.raises(OpenAIFilesError):
        world.execute(_upload_operator(world), try_number=1, run_start=run_started)
    assert stored(world.emu) == world.before

    result = world.execute(_upload_operator(world), try_number=2, run_start=run_started)

    _check_uploaded(world, result)
    assert world.hits("POST", "/v1/files") == [503, 200]


def test_task_retry_does_not_reuse_an_older_or_different_file(world: World, seed: Callable[..., Any]) -> None:
    """A same-name file from before this DAG run, or same name with another size, is not "ours"."""
    older = seed(world.source.read_bytes(), name="payload.bin", purpose="user_data")
    world.emu.advance_clock(2 * 3600)  # everything from now on is two hours after that file
    other_size = seed(b"not the same bytes", name="payload.bin", purpose="user_data")
    world.before = stored(world.emu)
    run_started = time.time() + 2 * 3600 - 60

    result = world.execute(_upload_operator(world), try_number=2, run_start=run_started)

    assert result["id"] not in (older["id"], other_size["id"])
    _check_uploaded(world, result)


# -- the retry budget ---------------------------------------------------------------------------------------


def _request_ids(hook: OpenAIFilesHook) -> list[str]:
    """Record the x-request-id of every answer the hook's session receives."""
    ids: list[str] = []
    hook.get_conn().hooks["response"].append(lambda r, *a, **k: ids.append(r.headers.get("x-request-id")))
    return ids


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_retry_budget_attempts_waits_and_total_time(
    world: World, monkeypatch: pytest.MonkeyPatch, max_retries: int
) -> None:
    set_connection(monkeypatch, host=world.emu.base_url, password=SECRET_KEY, extra={"max_retries": max_retries})
    path = f"/v1/files/{world.target['id']}"
    world.emu.add_fault(method="GET", path=path, status=503, times=50)
    hook = world.hook()
    hook.retry_policy.backoff_base, hook.retry_policy.backoff_max = 0.05, 0.1
    world.waits.really_sleep = True
    request_ids = _request_ids(hook)

    started = time.monotonic()
    with pytest.raises(OpenAIFilesError) as info:
        hook.get_file(world.target["id"])
    elapsed = time.monotonic() - started

    assert world.hits("GET", path) == [503] * (max_retries + 1)
    waits = world.waits.seconds
    assert len(waits) == max_retries
    for n, wait in enumerate(waits, start=1):
        ceiling = min(0.05 * 2 ** (n - 1), 0.1)
        assert 0.75 * ceiling <= wait <= ceiling, (n, wait)
    assert sum(waits) <= elapsed < sum(waits) + 2.0
    err = info.value
    assert type(err) is OpenAIFilesError
    assert err.http_status == 503
    assert err.request_id == request_ids[-1] and len(request_ids) == max_retries + 1
    assert f"gave up after {max_retries + 1} attempt(s)" in str(err)
    assert_no_key(err)
    assert stored(world.emu) == world.before


def test_retry_budget_uses_server_hints(world: World) -> None:
    world.emu.add_fault(method="GET", path="/v1/files", status=429, headers={"retry-after-ms": "40"}, times=50)
    hook = world.hook(max_retries=4)  # the hook's argument beats the connection's 5

    with pytest.raises(OpenAIFilesError) as info:
        list(hook.list_files())

    assert world.waits.seconds == [0.04] * 4
    assert world.hits("GET", "/v1/files") == [429] * 5
    assert info.value.http_status == 429 and "gave up after 5 attempt(s)" in str(info.value)


def test_retry_budget_exhausted_by_upload_creates_nothing(world: World) -> None:
    world.emu.add_fault(method="POST", path="/v1/files", status=500, times=50)
    hook = world.hook(max_retries=2)

    with pytest.raises(OpenAIFilesError) as info:
        hook.upload_file(world.source, "user_data")

    assert info.value.http_status == 500 and str(info.value.request_id).startswith("req_")
    assert world.hits("POST", "/v1/files") == [500] * 3
    assert world.hits("GET", "/v1/files") == [200] * 2  # looked for a created file before each re-send
    assert len(world.waits.seconds) == 2
    world.assert_unchanged()


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.operator], ids=[e.name for e in ENTRIES if e.operator])
def test_retry_budget_through_operators(world: World, entry: Entry, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host=world.emu.base_url, password=SECRET_KEY, extra={"max_retries": 2})
    path = entry.path(world)
    world.emu.add_fault(method=entry.method, path=path, status=502, times=50)

    with pytest.raises(OpenAIFilesError) as info:
        entry.run(world)

    assert world.hits(entry.method, path) == [502] * 3
    assert len(world.waits.seconds) == 2
    assert info.value.http_status == 502 and str(info.value.request_id).startswith("req_")
    assert "gave up after 3 attempt(s)" in str(info.value)
    world.assert_unchanged()


# -- the ambiguous delete --------------------------------------------------------------------------------


def _delete_op_strict(w: World) -> Any:
    from airflow_openai_files.operators import OpenAIDeleteFileOperator

    result = w.execute(OpenAIDeleteFileOperator(task_id="delete", file_id=w.target["id"], missing_ok=False))
    assert result == [w.target["id"]]
    return result


DELETES = [e for e in ENTRIES if e.check is _check_deleted] + [
    Entry("OpenAIDeleteFileOperator(missing_ok=False)", "DELETE", lambda w: "", _delete_op_strict, _check_deleted, True)
]


@pytest.mark.parametrize("entry", DELETES, ids=[e.name for e in DELETES])
def test_ambiguous_delete_is_reported_as_deleted(world: World, entry: Entry) -> None:
    """The server deletes the file, then the connection drops: the retry's 404 means "done", not "error"."""
    path = f"/v1/files/{world.target['id']}"
    world.emu.add_fault(method="DELETE", path=path, action="close_after_body")

    result = entry.run(world)  # each entry asserts it reports the target as deleted

    entry.check(world, result)
    assert world.hits("DELETE", path) == [0, 404]


def test_404_after_an_unambiguous_failure_is_still_an_error(world: World) -> None:
    """A 429 was refused before processing, so a 404 on the retry means the file never existed."""
    path = "/v1/files/file-doesnotexist"
    world.emu.add_fault(method="DELETE", path=path, status=429, headers={"retry-after-ms": "1"})

    with pytest.raises(OpenAIFilesError) as info:
        world.hook().delete_file("file-doesnotexist")

    assert info.value.http_status == 404
    assert world.hits("DELETE", path) == [429, 404]
    world.assert_unchanged()
