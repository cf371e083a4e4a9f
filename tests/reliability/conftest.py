"""Shared fixtures of the reliability suite: an emulator with a distinctive key, hooks and operators
whose retry waits are recorded instead of slept, end-state helpers, and a guard that fails any test
whose logs or output show the API key."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.emulator.pytest_plugin import EmulatorPool
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.reliability.helpers import CONN_ID, SECRET_KEY, SEED_CONN_ID, assert_no_key, tune
from tests.support.connections import set_connection
from tests.support.files import sha256


@pytest.fixture(autouse=True)
def _no_key_in_logs_or_output(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Every reliability test runs with DEBUG logs captured; none may show the key, nor may stdout/stderr."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert SECRET_KEY not in text, f"the API key leaked in a log line of {record.name}: {text[:200]}"
    out, err = capfd.readouterr()
    assert SECRET_KEY not in out and SECRET_KEY not in err, "the API key leaked on stdout/stderr"
    # give the output back so pytest still shows it (e.g. the load test's counts under -rP)
    print(out, end="")


@pytest.fixture
def emu(openai_files_emulators: EmulatorPool, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The session's emulator that accepts only SECRET_KEY (emptied, from the plugin's pool), with
    ``openai_files_default`` pointing at it with the suite's timeouts and retries, and
    ``SEED_CONN_ID`` for seeding and inspection (tests never re-point that one)."""
    emulator = openai_files_emulators.get(api_key=SECRET_KEY)
    set_connection(
        monkeypatch,
        host=emulator.base_url,
        password=SECRET_KEY,
        extra={"timeout": 30, "connect_timeout": 5, "max_retries": 5},
    )
    set_connection(monkeypatch, SEED_CONN_ID, host=emulator.base_url, password=SECRET_KEY)
    return emulator


@pytest.fixture
def make_hook() -> Iterator[Callable[..., OpenAIFilesHook]]:
    """Build hooks with recorded waits (``hook.waits``); all closed at teardown."""
    hooks: list[OpenAIFilesHook] = []

    def build(conn_id: str = CONN_ID, **kwargs: Any) -> OpenAIFilesHook:
        hook = OpenAIFilesHook(openai_conn_id=conn_id, **kwargs)
        hook.waits = tune(hook)  # type: ignore[attr-defined]
        hooks.append(hook)
        return hook

    yield build
    for hook in hooks:
        assert_no_key(repr(hook))
        hook.close()


@pytest.fixture
def seed(emu: Emulator, make_hook: Callable[..., OpenAIFilesHook], tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Upload a file (through an untouched hook) and return its File object plus ``sha256``/``data``.

    Seeds are ``vision`` files (``.png`` names) by default: a purpose whose content the service lets
    a client download, so download tests prove what works against the service too.
    """
    counter = iter(range(1_000_000))

    def upload(data: bytes | None = None, *, name: str | None = None, purpose: str = "vision") -> dict[str, Any]:
        n = next(counter)
        data = data if data is not None else bytes(range(256)) * (40 + n) + f"seed {n}".encode()
        source = tmp_path / "seeds" / (name or f"seed-{n}.png")
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(data)
        created = make_hook(SEED_CONN_ID).upload_file(source, purpose)
        return {**created, "sha256": sha256(data), "data": data}

    return upload
