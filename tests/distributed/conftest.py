"""The distributed deployment, started once per session; run with ``make test-distributed``.

These tests are marked ``distributed`` and are skipped unless selected (``-m distributed``) or
``OPENAI_FILES_DISTRIBUTED=1`` is set, so the default ``make test`` never starts a cluster.
A component that cannot be installed skips them, or fails them under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.distributed_harness import KNOWN_BUGS_SEEN, TIMINGS, Deployment
from tests.support.services import MissingComponent, missing_python_modules


def _selected(config: pytest.Config) -> bool:
    return os.environ.get("OPENAI_FILES_DISTRIBUTED") == "1" or "distributed" in (config.option.markexpr or "").replace(
        "not distributed", ""
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distributed: runs the CeleryExecutor deployment (make test-distributed)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _selected(config):
        return
    skip = pytest.mark.skip(reason="distributed deployment test: run with make test-distributed")
    for item in items:
        if item.get_closest_marker("distributed") is not None:
            item.add_marker(skip)


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"distributed test cannot run: {message}", pytrace=False)
    pytest.skip(f"distributed test cannot run here: {message}")


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    missing = missing_python_modules()
    if missing:
        _unavailable(f"missing Python packages {missing} (pip install them, or use make test-distributed)")
    try:
        deployment = Deployment()
    except MissingComponent as err:
        _unavailable(str(err))
    try:
        try:
            deployment.start()
        except MissingComponent as err:
            _unavailable(str(err))
        print(f"\n{deployment.describe()}")
        yield deployment
    finally:
        still_running = deployment.stop()
    assert not still_running, f"processes that did not stop: {still_running}"


@pytest.fixture
def fresh(deployment: Deployment) -> Deployment:
    deployment.reset()
    return deployment


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("distributed wall times")
    for name, seconds in TIMINGS:
        terminalreporter.write_line(f"{seconds:8.1f} s  {name}")
    if KNOWN_BUGS_SEEN:
        terminalreporter.section("known package bugs seen (expected failures)")
        for message in KNOWN_BUGS_SEEN:
            terminalreporter.write_line(f"- {message}")
