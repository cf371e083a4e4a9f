"""The official SDK drives ``client.vector_stores`` against the emulator, as OpenAI and as Azure OpenAI:
stores, files, file batches (including ``upload_and_poll``), search with attribute filters, lifecycle on
the emulator's clock (no sleeps), the service's refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.emulator.pytest_plugin import EmulatorPool
from airflow_openai_files.limits import AZURE_GA_API_VERSION, FILE_BATCH_MAX_FILES

KEY = "vector-store-test-key-SECRET"
#: Files stay in_progress this long on the emulator's clock.
PROCESSING = 30.0


@pytest.fixture(params=["openai", "azure"])
def emu(request: pytest.FixtureRequest, openai_files_emulators: EmulatorPool) -> Emulator:
    """Each test once per flavor, on the session's emulator of that flavor (emptied)."""
    return openai_files_emulators.get(flavor=request.param, api_key=KEY, vector_store_file_seconds=PROCESSING)


@pytest.fixture
def client(emu: Emulator) -> Iterator[openai.OpenAI]:
    sdk: openai.OpenAI
    if emu.is_azure:
        sdk = openai.AzureOpenAI(
            azure_endpoint=emu.endpoint, api_version=AZURE_GA_API_VERSION, api_key=KEY, max_retries=0
        )
    else:
        sdk = openai.OpenAI(base_url=emu.base_url, api_key=KEY, max_retries=0)
    with sdk:
        yield sdk


def upload(client: openai.OpenAI, name: str, content: bytes) -> str:
    return client.files.create(file=(name, content), purpose="assistants").id


def test_store_crud_and_paging(client: openai.OpenAI, emu: Emulator) -> None:
    created = [client.vector_stores.create(name=f"store-{i}", metadata={"team": "docs", "i": str(i)}) for i in range(5)]
    store = created[0]
    assert store.id.startswith("vs_") and len(store.id) == len("vs_") + 24
    assert store.status == "completed" and store.usage_bytes == 0 and store.file_counts.total == 0
    assert store.expires_after is None and store.metadata == {"team": "docs", "i": "0"}

    pages = client.vector_stores.list(limit=2, order="asc")
    assert [s.id for s in pages] == [s.id for s in created]  # auto-paged: three requests
    newest_first = [s.id for s in client.vector_stores.list(limit=2)]
    assert newest_first == [s.id for s in reversed(created)]
    before = client.vector_stores.list(limit=2, order="asc", before=created[3].id)
    assert [s.id for s in before.data] == [created[1].id, created[2].id]

    renamed = client.vector_stores.update(
        store.id, name="renamed", expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert renamed.name == "renamed" and renamed.expires_after is not None and renamed.expires_after.days == 2
    assert renamed.expires_at == renamed.last_active_at + 2 * 86400
    assert client.vector_stores.retrieve(store.id).name == "renamed"

    deleted = client.vector_stores.delete(store.id)
    assert deleted.deleted and deleted.id == store.id
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
    assert store.id not in {s["id"] for s in emu.vector_stores()}


def test_files_lifecycle_failures_and_usage(client: openai.OpenAI, emu: Emulator) -> None:
    store = client.vector_stores.create(name="kb")
    good = upload(client, "guide.md", b"Airflow schedules pipelines.\n\nVector stores hold documents.")
    empty = upload(client, "empty.txt", b"")
    binary = upload(client, "blob.txt", b"\x00\x01\x02 not text \xff")
    image = upload(client, "photo.png", b"\x89PNG....")
    for file_id in (good, empty, binary, image):
        attached = client.vector_stores.files.create(
            vector_store_id=store.id, file_id=file_id, attributes={"team": "docs", "version": 3}
        )
        assert attached.status == "in_progress" and attached.last_error is None
    assert client.vector_stores.retrieve(store.id).status == "in_progress"
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="completed")] == []

    emu.advance_clock(PROCESSING)
    files = {f.id: f for f in client.vector_stores.files.list(store.id)}
    assert files[good].status == "completed" and files[good].usage_bytes > 0
    assert files[good].attributes == {"team": "docs", "version": 3}
    for file_id, code in ((empty, "invalid_file"), (binary, "invalid_file"), (image, "unsupported_file")):
        assert files[file_id].status == "failed"
        assert files[file_id].last_error is not None and files[file_id].last_error.code == code
        assert files[file_id].usage_bytes == 0
    failed = {f.id for f in client.vector_stores.files.list(store.id, filter="failed")}
    assert failed == {empty, binary, image}

    now = client.vector_stores.retrieve(store.id)
    assert now.status == "completed"
    assert (now.file_counts.total, now.file_counts.completed, now.file_counts.failed) == (4, 1, 3)
    assert now.usage_bytes == files[good].usage_bytes

    content = list(client.vector_stores.files.content(good, vector_store_id=store.id))
    assert "Vector stores hold documents." in content[0].text

    updated = client.vector_stores.files.update(good, vector_store_id=store.id, attributes={"team": "ops"})
    assert updated.attributes == {"team": "ops"}
    removed = client.vector_stores.files.delete(good, vector_store_id=store.id)
    assert removed.deleted and removed.id == good
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(good, vector_store_id=store.id)
    # Detaching keeps the file itself.
    assert client.files.retrieve(good).id == good


def test_file_batches_create_cancel_list_and_upload_and_poll(client: openai.OpenAI, emu: Emulator) -> None:
    store = client.vector_stores.create(name="batches")
    ids = [upload(client, f"doc{i}.md", f"document number {i}".encode()) for i in range(3)]
    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id,
        files=[
            {"file_id": ids[0], "attributes": {"n": 0}},
            {
                "file_id": ids[1],
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100},
                },
            },
        ],
    )
    assert batch.id.startswith("vsfb_") and batch.status == "in_progress"
    assert batch.file_counts.total == 2 and batch.file_counts.in_progress == 2
    one = client.vector_stores.files.retrieve(ids[1], vector_store_id=store.id)
    assert one.chunking_strategy is not None and one.chunking_strategy.static.max_chunk_size_tokens == 200  # type: ignore[union-attr]

    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 2
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="cancelled")
    assert sorted(f.id for f in listed) == sorted(ids[:2])
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)

    again = client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=[ids[2]], attributes={"x": True}
    )
    emu.advance_clock(PROCESSING)
    done = client.vector_stores.file_batches.retrieve(again.id, vector_store_id=store.id)
    assert done.status == "completed" and done.file_counts.completed == 1


def test_upload_and_poll(tmp_path: Path) -> None:
    with (
        Emulator(data_dir=tmp_path / "emu", api_key=KEY, vector_store_file_seconds=0) as emulator,
        openai.OpenAI(base_url=emulator.base_url, api_key=KEY, max_retries=0) as client,
    ):
        store = client.vector_stores.create(name="polled")
        batch = client.vector_stores.file_batches.upload_and_poll(
            store.id, files=[("a.txt", b"alpha text"), ("b.txt", b"")], poll_interval_ms=1
        )
        assert batch.status == "completed"
        assert (batch.file_counts.completed, batch.file_counts.failed) == (1, 1)
        assert len([f for f in emulator.files() if f["purpose"] == "assistants"]) == 2


def test_search_filters_and_ranking(client: openai.OpenAI, emu: Emulator) -> None:
    store = client.vector_stores.create(name="search")
    docs = {
        "airflow.md": ("Airflow runs DAGs of tasks on a schedule.", {"team": "data", "year": 2024, "public": True}),
        "vectors.md": ("Vector stores index documents for file search.", {"team": "ml", "year": 2025, "public": True}),
        "secret.md": ("Airflow secrets backends keep connections.", {"team": "data", "year": 2023, "public": False}),
    }
    ids = {}
    for name, (text, attributes) in docs.items():
        ids[name] = upload(client, name, text.encode())
        client.vector_stores.files.create(vector_store_id=store.id, file_id=ids[name], attributes=attributes)
    assert list(client.vector_stores.search(store.id, query="Airflow")) == []  # nothing indexed yet
    emu.advance_clock(PROCESSING)

    hits = list(client.vector_stores.search(store.id, query="Airflow DAGs schedule"))
    assert [h.filename for h in hits] == ["airflow.md", "secret.md"]
    assert hits[0].score == 1.0 and 0 < hits[1].score < 1 and hits[0].file_id == ids["airflow.md"]
    assert "Airflow runs DAGs" in hits[0].content[0].text

    def names(filters: dict) -> list[str]:  # type: ignore[type-arg]
        return sorted(
            h.filename for h in client.vector_stores.search(store.id, query="Airflow vector", filters=filters)
        )

    assert names({"type": "eq", "key": "team", "value": "data"}) == ["airflow.md", "secret.md"]
    assert names({"type": "ne", "key": "team", "value": "data"}) == ["vectors.md"]
    assert names({"type": "gte", "key": "year", "value": 2024}) == ["airflow.md", "vectors.md"]
    assert names({"type": "lt", "key": "year", "value": 2024}) == ["secret.md"]
    assert names({"type": "in", "key": "team", "value": ["ml"]}) == ["vectors.md"]
    both = {
        "type": "and",
        "filters": [{"type": "eq", "key": "public", "value": True}, {"type": "lte", "key": "year", "value": 2024}],
    }
    assert names(both) == ["airflow.md"]
    either = {
        "type": "or",
        "filters": [{"type": "eq", "key": "team", "value": "ml"}, {"type": "lt", "key": "year", "value": 2024}],
    }
    assert names(either) == ["secret.md", "vectors.md"]
    assert len(client.vector_stores.search(store.id, query="Airflow", max_num_results=1).data) == 1
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search(store.id, query="x", max_num_results=51)
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search(store.id, query="x", filters={"type": "like", "key": "a", "value": 1})  # type: ignore[typeddict-item]


def test_refusals(client: openai.OpenAI, emu: Emulator) -> None:
    store = client.vector_stores.create(name="rules")
    file_id = upload(client, "a.md", b"text")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("vs_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=store.id, file_id="file-missing")
    with pytest.raises(openai.BadRequestError, match="max_chunk_size_tokens"):
        client.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=file_id,
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
        )
    with pytest.raises(openai.BadRequestError, match="chunk_overlap_tokens"):
        client.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=file_id,
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401}},
        )
    with pytest.raises(openai.BadRequestError, match="too many properties"):
        client.vector_stores.files.create(
            vector_store_id=store.id, file_id=file_id, attributes={f"k{i}": i for i in range(17)}
        )
    with pytest.raises(openai.BadRequestError, match="maximum length 2000"):
        client.vector_stores.file_batches.create(
            vector_store_id=store.id, file_ids=[file_id] * (FILE_BATCH_MAX_FILES + 1)
        )
    with pytest.raises(openai.BadRequestError, match="mutually exclusive"):
        client.vector_stores.file_batches.create(
            vector_store_id=store.id, file_ids=[file_id], files=[{"file_id": file_id}]
        )
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(name="x", expires_after={"anchor": "last_active_at", "days": 0})
    assert [s["name"] for s in emu.vector_stores()] == ["rules"]


def test_expiry_anchored_on_last_activity(client: openai.OpenAI, emu: Emulator) -> None:
    store = client.vector_stores.create(name="short", expires_after={"anchor": "last_active_at", "days": 1})
    emu.advance_clock(20 * 3600)
    client.vector_stores.search(store.id, query="anything")  # activity moves the anchor
    emu.advance_clock(20 * 3600)
    assert client.vector_stores.retrieve(store.id).status == "completed"
    emu.advance_clock(5 * 3600)
    expired = client.vector_stores.retrieve(store.id)
    assert expired.status == "expired"
    with pytest.raises(openai.BadRequestError, match="expired"):
        client.vector_stores.files.create(vector_store_id=store.id, file_id=upload(client, "late.md", b"late"))
