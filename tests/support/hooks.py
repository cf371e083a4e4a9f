"""Hooks for tests: retry waits recorded instead of slept."""

from __future__ import annotations

from typing import Any


def record_waits(hook: Any) -> list[float]:
    """Replace the hook's retry sleep: every wait is appended to the returned list, none is slept."""
    waits: list[float] = []
    hook.retry_policy.sleep = waits.append
    return waits
