"""Throttled progress lines for long transfers."""

from __future__ import annotations

import logging
import time
from typing import Any

MiB = 1024 * 1024


class Progress:
    """
    Logs ``what: 42% (215.0/512.0 MiB) at 310.2 MiB/s`` at most once per ``interval`` seconds.

    :param log: the logger to write to.
    :param what: what is being transferred, e.g. ``Uploading train.jsonl``.
    :param total: expected bytes.
    :param interval: seconds between two lines.
    """

    def __init__(self, log: logging.Logger | Any, what: str, total: int, interval: float = 5.0) -> None:
        self.log = log
        self.what = what
        self.total = max(total, 1)
        self.interval = interval
        self.restart()

    def restart(self) -> None:
        self.started = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        rate = done / MiB / max(now - self.started, 1e-9)
        self.log.info(
            "%s: %d%% (%.1f/%.1f MiB) at %.1f MiB/s",
            self.what,
            min(100, done * 100 // self.total),
            done / MiB,
            self.total / MiB,
            rate,
        )
