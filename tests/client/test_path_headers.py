"""The beta header of vector store paths, decided once in client/ and sent by both transports."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_openai_files.client.settings import path_headers
from airflow_openai_files.hooks import OpenAIFilesAsyncHook, OpenAIFilesHook
from tests.conftest import set_connection


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("OpenAI-Beta")))
        kind = "vector_store" if "/vector_stores/" in self.path else "file"
        object_id = self.path.rstrip("/").rsplit("/", 1)[-1]
        body = json.dumps({"id": object_id, "object": kind, "status": "completed", "file_counts": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str | None]]]:
    """A loopback server that records the path and the ``OpenAI-Beta`` header of every request."""
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    set_connection(monkeypatch, host=f"http://127.0.0.1:{server.server_address[1]}/v1")
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_path_headers_only_for_vector_stores() -> None:
    assert path_headers("vector_stores") == {"OpenAI-Beta": "assistants=v2"}
    assert path_headers("/vector_stores/vs_1/file_batches/vsfb_1") == {"OpenAI-Beta": "assistants=v2"}
    assert path_headers("files/file-1") is None
    assert path_headers("batches") is None


def test_sync_hook_sends_beta_header_on_vector_store_paths(recorder: list[tuple[str, str | None]]) -> None:
    hook = OpenAIFilesHook()
    hook.get_vector_store("vs_abc")
    hook.get_file("file-abc")
    assert recorder == [("/v1/vector_stores/vs_abc", "assistants=v2"), ("/v1/files/file-abc", None)]


def test_async_hook_sends_beta_header_on_vector_store_paths(recorder: list[tuple[str, str | None]]) -> None:
    async def scenario() -> None:
        hook = OpenAIFilesAsyncHook()
        await hook.get_vector_store("vs_abc")
        await hook.get_vector_store_file_batch("vs_abc", "vsfb_abc")
        await hook.get_file("file-abc")

    asyncio.run(scenario())
    assert recorder == [
        ("/v1/vector_stores/vs_abc", "assistants=v2"),
        ("/v1/vector_stores/vs_abc/file_batches/vsfb_abc", "assistants=v2"),
        ("/v1/files/file-abc", None),
    ]
