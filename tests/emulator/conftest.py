"""Shared helpers for the emulator tests: clients that validate every JSON answer against the
OpenAPI schemas. JSONL content comes from ``tests.support.files``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
import requests

from airflow_openai_files.emulator import Emulator, EmulatorProcess
from tests.openapi_schemas import validate_response

VALIDATED: list[str] = []  # names of the schemas checked, for a sanity assertion


def check_json_answer(method: str, url: str, status: int, content_type: str, body: bytes) -> None:
    if "application/json" not in content_type:
        return
    path = url.split("?", 1)[0]
    name = validate_response(method, path[path.index("/v1") :] if "/v1" in path else path, status, json.loads(body))
    if name is not None:
        VALIDATED.append(name)


def _httpx_hook(response: httpx2.Response) -> None:
    if "application/json" in response.headers.get("content-type", ""):
        response.read()
        check_json_answer(
            response.request.method,
            str(response.request.url),
            response.status_code,
            response.headers["content-type"],
            response.content,
        )


class ValidatingSession(requests.Session):
    """A requests session that validates each JSON answer of ``/v1`` against the spec."""

    def __init__(self, emulator: Emulator | EmulatorProcess) -> None:
        super().__init__()
        self.base = emulator.base_url
        self.headers["Authorization"] = f"Bearer {emulator.api_key}"

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if isinstance(url, str) and url.startswith("/"):
            url = self.base + url
        response = super().request(method, url, *args, **kwargs)
        if not kwargs.get("stream") and "/v1" in str(url):
            check_json_answer(
                str(method),
                str(url),
                response.status_code,
                response.headers.get("content-type", ""),
                response.content,
            )
        return response


def sdk_client(emulator: Emulator, **kwargs: Any) -> openai.OpenAI:
    http_client = httpx2.Client(event_hooks={"response": [_httpx_hook]})
    options: dict[str, Any] = {"base_url": emulator.base_url, "api_key": emulator.api_key, "max_retries": 0}
    options.update(kwargs)
    return openai.OpenAI(http_client=http_client, **options)


@pytest.fixture
def client(openai_files_emulator: Emulator) -> Iterator[openai.OpenAI]:
    with sdk_client(openai_files_emulator) as sdk:
        yield sdk


@pytest.fixture
def http(openai_files_emulator: Emulator) -> Iterator[ValidatingSession]:
    with ValidatingSession(openai_files_emulator) as session:
        yield session
