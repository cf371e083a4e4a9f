"""``OpenAIVectorStoreSyncOperator`` against the emulator, as OpenAI and as Azure OpenAI: what lands in the
store and in the Files API after each run (counted on the emulator), failures, retries after a kill, an S3
source and the deferrable path through the trigger."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException, TaskDeferred
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.operators import OpenAIVectorStoreSyncOperator
from airflow_openai_files.resources.vector_stores import HASH_ATTRIBUTE, PATH_ATTRIBUTE
from airflow_openai_files.sensors import OpenAIVectorStoreFileBatchSensor
from airflow_openai_files.triggers import OpenAIVectorStoreFileBatchTrigger
from tests.support.azure import FlavorTarget
from tests.support.task_helpers import make_context
from tests.support.triggers import run_trigger

FAST = {"vector_store_file_seconds": 0.05}


@pytest.fixture
def target(flavor_target_factory: Callable[..., FlavorTarget]) -> FlavorTarget:
    return flavor_target_factory(**FAST)


def write(root: Path, files: Mapping[str, bytes | None]) -> None:
    for name, content in files.items():
        path = root / name
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def sync(source: Any, context: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("vector_store_name", "docs")
    operator = OpenAIVectorStoreSyncOperator(
        task_id="sync", source=source, poll_interval=0.02, timeout=60, deferrable=False, **kwargs
    )
    result: dict[str, Any] = operator.execute(context or make_context())
    return result


def store_state(hook: OpenAIFilesHook, store_id: str) -> dict[str, tuple[str, str]]:
    """``{path: (sha256, status)}`` of the store's files, from the service."""
    state = {}
    for item in hook.list_vector_store_files(store_id, page_size=2):  # several pages
        attributes = item["attributes"]
        assert attributes[PATH_ATTRIBUTE] not in state, "one vector store file per path"
        state[attributes[PATH_ATTRIBUTE]] = (attributes[HASH_ATTRIBUTE], item["status"])
    return state


def assistants_files(target: FlavorTarget) -> list[dict[str, Any]]:
    return [f for f in target.emulator.files() if f["purpose"] == "assistants"]


def uploads_in(target: FlavorTarget, since: int) -> int:
    return sum(
        1 for method, path, _ in target.emulator.request_log()[since:] if method == "POST" and path.endswith("/files")
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


DOCS = {
    "guide.md": b"# Guide\nAirflow schedules the sync.",
    "notes/faq.txt": b"Vector stores answer questions.",
    "notes/deep/api.json": b'{"route": "/vector_stores"}',
}


def test_first_run_then_nothing_changed_uploads_nothing(target: FlavorTarget, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, DOCS)
    first = sync(docs, attributes={"team": "docs"})
    hook = OpenAIFilesHook()
    store_id = first["vector_store_id"]
    assert (first["added"], first["replaced"], first["removed"], first["unchanged"]) == (3, 0, 0, 0)
    assert first["failed"] == [] and first["bytes"] == sum(len(v) for v in DOCS.values())
    assert first["usage_bytes"] == first["bytes"]
    assert store_state(hook, store_id) == {path: (sha(data), "completed") for path, data in DOCS.items()}
    assert hook.get_vector_store_file(store_id, assistants_files(target)[0]["id"])["attributes"]["team"] == "docs"
    assert len(assistants_files(target)) == 3

    mark = len(target.emulator.request_log())
    second = sync(docs, attributes={"team": "docs"})
    assert second["vector_store_id"] == store_id  # found by name, not created again
    assert (second["added"], second["replaced"], second["removed"], second["unchanged"]) == (0, 0, 0, 3)
    assert second["bytes"] == 0 and uploads_in(target, mark) == 0
    assert len(assistants_files(target)) == 3 and len(target.emulator.vector_stores()) == 1


def test_edit_add_remove_does_exactly_those_changes(target: FlavorTarget, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, DOCS)
    store_id = sync(docs)["vector_store_id"]
    hook = OpenAIFilesHook()
    before = {f["id"] for f in assistants_files(target)}
    kept_id = next(
        item["id"]
        for item in hook.list_vector_store_files(store_id)
        if item["attributes"][PATH_ATTRIBUTE] == "guide.md"
    )

    write(
        docs,
        {"notes/faq.txt": b"Vector stores answer more questions.", "new.md": b"brand new", "notes/deep/api.json": None},
    )
    mark = len(target.emulator.request_log())
    result = sync(docs)
    assert (result["added"], result["replaced"], result["removed"], result["unchanged"]) == (1, 1, 1, 1)
    assert result["bytes"] == len(b"Vector stores answer more questions.") + len(b"brand new")
    assert uploads_in(target, mark) == 2
    expected = {
        "guide.md": sha(DOCS["guide.md"]),
        "notes/faq.txt": sha(b"Vector stores answer more questions."),
        "new.md": sha(b"brand new"),
    }
    assert {path: value[0] for path, value in store_state(hook, store_id).items()} == expected
    now = {f["id"] for f in assistants_files(target)}
    assert len(now) == 3 and kept_id in now  # the old faq and api files are deleted, guide untouched
    assert len(before & now) == 1
    hits = hook.search_vector_store(store_id, "more questions", max_num_results=1)
    assert hits[0]["attributes"][PATH_ATTRIBUTE] == "notes/faq.txt"


def test_delete_removed_false_keeps_removed_files(target: FlavorTarget, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, DOCS)
    store_id = sync(docs)["vector_store_id"]
    write(docs, {"guide.md": None})
    result = sync(docs, delete_removed=False)
    assert result["removed"] == 0 and "guide.md" in store_state(OpenAIFilesHook(), store_id)


def test_failed_files_within_and_beyond_max_failed_files(target: FlavorTarget, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, {**DOCS, "blob.txt": b"\x00\x01binary\xff", "empty.md": b""})
    result = sync(docs, max_failed_files=2)
    failed = {f["path"]: f for f in result["failed"]}
    assert set(failed) == {"blob.txt", "empty.md"}
    assert failed["blob.txt"]["code"] == "invalid_file" and failed["blob.txt"]["file_id"].startswith("file-")
    assert failed["empty.md"]["code"] == "invalid_file" and failed["empty.md"]["file_id"] is None
    assert result["added"] == 4  # empty.md is never sent

    with pytest.raises(AirflowFailException) as info:
        sync(docs, max_failed_files=1)
    message = str(info.value)
    assert "2 files failed" in message and "blob.txt" in message and "empty.md" in message
    assert "invalid_file" in message


def test_include_exclude_and_attributes_callable(target: FlavorTarget, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs, DOCS)
    result = sync(
        docs,
        include="**/*.txt",
        attributes=lambda path: {"folder": path.split("/")[0]},
    )
    store = store_state(OpenAIFilesHook(), result["vector_store_id"])
    assert list(store) == ["notes/faq.txt"]
    result = sync(docs, exclude=["notes/**"])
    assert sorted(store_state(OpenAIFilesHook(), result["vector_store_id"])) == ["guide.md"]


def test_retry_after_a_kill_uploads_nothing_twice_and_leaves_no_orphan(
    target: FlavorTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    write(docs, {**DOCS, "later.md": b"version one"})

    class Killed(BaseException):
        pass

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    # Try 1 uploads every file, then dies before attaching any.
    with monkeypatch.context() as patch:
        patch.setattr(OpenAIFilesHook, "create_vector_store_file_batch", killed)
        with pytest.raises(Killed):
            sync(docs, context=make_context(try_number=1))
    uploaded = {f["filename"]: f["id"] for f in assistants_files(target)}
    assert len(uploaded) == 4

    # Between the tries one file changes: its first upload is no longer wanted.
    write(docs, {"later.md": b"version two!"})
    mark = len(target.emulator.request_log())
    result = sync(docs, context=make_context(try_number=2))
    assert uploads_in(target, mark) == 1  # only the changed file
    assert result["added"] == 4 and result["failed"] == []
    files = assistants_files(target)
    assert len(files) == 4, "the killed try's upload of the old version is deleted"
    attached = {item["id"] for item in OpenAIFilesHook().list_vector_store_files(result["vector_store_id"])}
    assert attached == {f["id"] for f in files}
    reused = set(uploaded.values()) & attached
    assert len(reused) == 3


def test_s3_source(target: FlavorTarget, s3: Any) -> None:
    for name, data in DOCS.items():
        s3.put(f"kb/{name}", data)
    prefix = s3.url("kb")
    result = sync(prefix)
    state = store_state(OpenAIFilesHook(), result["vector_store_id"])
    assert {path: value[0] for path, value in state.items()} == {path: sha(data) for path, data in DOCS.items()}
    s3.put("kb/guide.md", b"changed in the bucket")
    again = sync(prefix)
    assert (again["replaced"], again["unchanged"]) == (1, 2)


def test_list_of_paths_source(target: FlavorTarget, tmp_path: Path) -> None:
    write(tmp_path, DOCS)
    result = sync([tmp_path / "guide.md", str(tmp_path / "notes/faq.txt")])
    assert sorted(store_state(OpenAIFilesHook(), result["vector_store_id"])) == ["faq.txt", "guide.md"]


def test_deferrable_path_through_the_trigger(
    flavor_target_factory: Callable[..., FlavorTarget], tmp_path: Path
) -> None:
    target = flavor_target_factory(vector_store_file_seconds=0.3)
    docs = tmp_path / "docs"
    write(docs, {**DOCS, "blob.txt": b"\x00binary"})
    operator = OpenAIVectorStoreSyncOperator(
        task_id="sync", source=docs, vector_store_name="kb", deferrable=True, poll_interval=0.05, max_failed_files=1
    )
    context = make_context()
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context)
    trigger = info.value.trigger
    assert isinstance(trigger, OpenAIVectorStoreFileBatchTrigger) and trigger.timeout <= 3600
    assert trigger.serialize()[0] == "airflow_openai_files.triggers.OpenAIVectorStoreFileBatchTrigger"
    [event] = run_trigger(info.value)  # rebuilt from its serialized form, as the triggerer does
    assert event["status"] == "success" and event["batches"][0]["file_counts"]["completed"] == 3
    result = operator.execute_complete(context, event)
    assert result["added"] == 4 and [f["path"] for f in result["failed"]] == ["blob.txt"]
    assert target.emulator.vector_stores()[0]["file_counts"]["in_progress"] == 0


def test_trigger_times_out(flavor_target_factory: Callable[..., FlavorTarget]) -> None:
    flavor_target_factory(vector_store_file_seconds=3600)
    hook = OpenAIFilesHook()
    store = hook.create_vector_store("slow")
    file_id = hook.upload_file(__file__, "assistants")["id"]
    batch = hook.create_vector_store_file_batch(store["id"], file_ids=[file_id])
    [event] = run_trigger(
        OpenAIVectorStoreFileBatchTrigger(store["id"], [batch["id"]], poll_interval=0.05, timeout=0.3)
    )
    assert event["status"] == "timeout" and batch["id"] in event["message"]


def test_file_batch_sensor(target: FlavorTarget, tmp_path: Path) -> None:
    hook = OpenAIFilesHook()
    store = hook.create_vector_store("sensed")
    good = hook.upload_file(__file__, "assistants")["id"]
    (tmp_path / "bad.bin").write_bytes(b"\x00\x01")
    bad = hook.upload_file(tmp_path / "bad.bin", "assistants")["id"]
    batch = hook.create_vector_store_file_batch(store["id"], file_ids=[good, bad])

    sensor = OpenAIVectorStoreFileBatchSensor(
        task_id="wait", vector_store_id=store["id"], batch_id=batch, max_failed_files=1, poke_interval=0.02, timeout=30
    )
    done = sensor.execute(make_context())
    assert done["status"] == "completed" and done["file_counts"]["failed"] == 1

    strict = OpenAIVectorStoreFileBatchSensor(
        task_id="strict", vector_store_id=store["id"], batch_id=batch["id"], poke_interval=0.02, timeout=30
    )
    with pytest.raises(AirflowFailException, match="unsupported_file"):
        strict.execute(make_context())
    missing = OpenAIVectorStoreFileBatchSensor(
        task_id="missing", vector_store_id=store["id"], batch_id="vsfb_nope", poke_interval=0.02, timeout=30
    )
    with pytest.raises(AirflowFailException, match="does not exist"):
        missing.execute(make_context())


def test_retry_after_a_kill_while_indexing_resumes_the_wait(
    target: FlavorTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_openai_files.operators import _vector_store_steps

    docs = tmp_path / "docs"
    write(docs, DOCS)

    class Killed(BaseException):
        pass

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(_vector_store_steps, "wait_for_indexing", killed)
        with pytest.raises(Killed):
            sync(docs, context=make_context(try_number=1))
    mark = len(target.emulator.request_log())
    result = sync(docs, context=make_context(try_number=2))
    assert uploads_in(target, mark) == 0 and result["unchanged"] == 3 and result["failed"] == []
    assert len(assistants_files(target)) == 3
    state = store_state(OpenAIFilesHook(), result["vector_store_id"])
    assert {path: value for path, value in state.items()} == {p: (sha(d), "completed") for p, d in DOCS.items()}


def test_waiting_on_the_worker_has_a_real_timeout(
    flavor_target_factory: Callable[..., FlavorTarget], tmp_path: Path
) -> None:
    from airflow_openai_files._compat import AirflowException

    flavor_target_factory(vector_store_file_seconds=3600)
    write(tmp_path / "docs", DOCS)
    with pytest.raises(AirflowException, match="Timed out after") as info:
        OpenAIVectorStoreSyncOperator(
            task_id="sync", source=tmp_path / "docs", vector_store_name="slow", poll_interval=0.05, timeout=0.5
        ).execute(make_context())
    assert not isinstance(info.value, AirflowFailException)  # Airflow retries it; the retry resumes the wait
    assert "3 in progress" in str(info.value)


def test_a_cancelled_batch_counts_its_files_as_failed(
    flavor_target_factory: Callable[..., FlavorTarget], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flavor_target_factory(vector_store_file_seconds=3600)
    write(tmp_path / "docs", DOCS)
    original = OpenAIFilesHook.create_vector_store_file_batch

    def create_then_cancel(self: OpenAIFilesHook, store_id: str, **kwargs: Any) -> dict[str, Any]:
        batch = original(self, store_id, **kwargs)
        return self.cancel_vector_store_file_batch(store_id, batch["id"])  # someone cancels it at once

    monkeypatch.setattr(OpenAIFilesHook, "create_vector_store_file_batch", create_then_cancel)
    with pytest.raises(AirflowFailException, match="3 files failed") as info:
        sync(tmp_path / "docs")
    assert "cancelled" in str(info.value) and "guide.md" in str(info.value)


class StateStore:
    """``context["task_state_store"]`` of one task instance (Airflow 3.3+), values kept as JSON."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class Killed(BaseException):
    """What a SIGKILL of the worker looks like to the test: nothing after it runs."""


def kill_before_attaching(monkeypatch: pytest.MonkeyPatch, source: Path, context: dict[str, Any]) -> None:
    """Try 1 uploads every file to send, then dies before attaching any."""

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(OpenAIFilesHook, "create_vector_store_file_batch", killed)
        with pytest.raises(Killed):
            sync(source, context=context)


def retry_context(store: StateStore | None, *, run_start_known: bool = True) -> dict[str, Any]:
    context = make_context(try_number=2)
    if not run_start_known:
        context["dag_run"] = SimpleNamespace(start_date=None, queued_at=None, run_id=context["run_id"])
    if store is not None:
        context["task_state_store"] = store
    return context


def foreign_upload(target: FlavorTarget, tmp_path: Path) -> str:
    """A tagged file someone else uploaded meanwhile (another sync): never ours to delete."""
    data = b"another team's document"
    path = tmp_path / "foreign.md"
    path.write_bytes(data)
    return str(OpenAIFilesHook().upload_file(path, "assistants", filename=f"{sha(data)[:16]}_foreign.md")["id"])


@pytest.mark.parametrize("run_start_known", [True, False], ids=["run-start", "run-start-unknown"])
def test_retry_with_task_state_deletes_uploads_of_files_gone_from_the_source(
    target: FlavorTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_start_known: bool
) -> None:
    """Airflow 3.3: try 1 records the names it is about to upload; the retry deletes those nothing uses (a file
    deleted from the source, a file changed), reuses the rest, and leaves someone else's tagged upload alone.
    Without the run's start the retry looks from try 1's recorded start."""
    docs = tmp_path / "docs"
    write(docs, {**DOCS, "later.md": b"version one"})
    store = StateStore()
    kill_before_attaching(monkeypatch, docs, make_context(try_number=1, task_state_store=store))
    first = {f["filename"]: f["id"] for f in assistants_files(target)}
    assert len(first) == 4
    foreign = foreign_upload(target, tmp_path)

    write(docs, {"later.md": None, "guide.md": b"# Guide\nrewritten before the retry"})
    mark = len(target.emulator.request_log())
    result = sync(docs, context=retry_context(store, run_start_known=run_start_known))

    assert uploads_in(target, mark) == 1  # only the changed guide
    assert result["added"] == 3 and result["failed"] == []
    hook = OpenAIFilesHook()
    attached = {item["id"] for item in hook.list_vector_store_files(result["vector_store_id"])}
    on_service = {f["id"] for f in assistants_files(target)}
    assert on_service == attached | {foreign}, "no orphan of try 1 left; the foreign upload kept"
    assert len(attached & set(first.values())) == 2  # faq and api reused
    assert store_state(hook, result["vector_store_id"]) == {
        "guide.md": (sha(b"# Guide\nrewritten before the retry"), "completed"),
        "notes/faq.txt": (sha(DOCS["notes/faq.txt"]), "completed"),
        "notes/deep/api.json": (sha(DOCS["notes/deep/api.json"]), "completed"),
    }
    assert not [key for key in store.values if ".uploads" in key or key.endswith(".batches")], "cleared at the end"


def test_retry_without_task_state_or_run_start_still_reuses_uploads(
    target: FlavorTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No task state store and no readable run start: the retry looks back a bounded window, so it still
    reuses try 1's uploads (nothing uploaded twice) and deletes the old version of a changed file; the upload
    of a file deleted from the source cannot be told from someone else's and stays (documented)."""
    docs = tmp_path / "docs"
    write(docs, {**DOCS, "later.md": b"version one"})
    kill_before_attaching(monkeypatch, docs, make_context(try_number=1))
    first = {f["filename"]: f["id"] for f in assistants_files(target)}
    foreign = foreign_upload(target, tmp_path)

    write(docs, {"later.md": None, "guide.md": b"# Guide\nrewritten before the retry"})
    mark = len(target.emulator.request_log())
    result = sync(docs, context=retry_context(None, run_start_known=False))

    assert uploads_in(target, mark) == 1
    attached = {item["id"] for item in OpenAIFilesHook().list_vector_store_files(result["vector_store_id"])}
    on_service = {f["id"] for f in assistants_files(target)}
    later = first[f"{sha(b'version one')[:16]}_later.md"]
    assert on_service == attached | {foreign, later}
    assert len(attached & set(first.values())) == 2
