"""Throttled progress lines for long transfers and long remote work, and sizes written for people."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from airflow_openai_files.limits import MiB
from airflow_openai_files.resources.fine_tuning import format_event, metrics_summary

KiB = 1024
GiB = 1024 * MiB


def human_size(size: float) -> str:
    """``512 bytes``, ``3.4 KiB``, ``12.0 MiB``, ``2.50 GiB``: never ``0.0 MiB`` for a small file."""
    if size < KiB:
        return f"{int(size)} bytes"
    if size < MiB:
        return f"{size / KiB:.1f} KiB"
    if size < GiB:
        return f"{size / MiB:.1f} MiB"
    return f"{size / GiB:.2f} GiB"


def rate(size: float, seconds: float) -> str:
    """Throughput with a unit that fits (``4.2 MiB/s``, ``812.0 KiB/s``)."""
    return f"{human_size(size / max(seconds, 1e-3))}/s"


def request_id_note(request_id: str | None) -> str:
    """``, request id req_1`` or nothing: never ``request id None``."""
    return f", request id {request_id}" if request_id else ""


class Progress:
    """
    Logs ``what: 42% (215.0 MiB of 512.0 MiB) at 310.2 MiB/s`` at most once per ``interval`` seconds.

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
        self.log.info(
            "%s: %d%% (%s of %s) at %s",
            self.what,
            min(100, done * 100 // self.total),
            human_size(done),
            human_size(self.total),
            rate(done, now - self.started),
        )


class Throttle:
    """
    At most one line per ``interval`` seconds: :meth:`ready` says whether one may be logged now.

    For progress of remote work that can run for hours (a deferred batch, a fine-tuning job): a line when
    something changed, but not one per poll. ``clock`` is injectable so tests step time instead of sleeping.
    """

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """True (and the interval starts again) if no line was allowed in the last ``interval`` seconds."""
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True

    def restart(self) -> None:
        """Start the interval again now (another line about the same thing was just logged)."""
        self._last = self.clock()


#: Seconds between two step-metrics summaries in the log while a fine-tuning job trains.
METRICS_LOG_INTERVAL = 60.0


class EventLog:
    """
    How a wait logs a job's events (the operator and sensor on the worker, the trigger in the triggerer).

    A long job sends one ``metrics`` event per step: hundreds of lines if each were logged. Every event
    other than metrics (status changes, messages) is logged at info; every metrics event at debug only; at
    info, a summary of the newest step (:func:`metrics_summary`) at most once per ``interval`` seconds, and
    the newest one not yet summarised when the job is over (``done``). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        log: Any,
        job_id: str,
        *,
        interval: float = METRICS_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.job_id = job_id
        self._throttle = Throttle(interval, clock)
        self._pending: dict[str, Any] | None = None

    def record(self, events: Iterable[dict[str, Any]], *, done: bool = False) -> None:
        """Log ``events`` (oldest first) as the class says; ``done``: the job is over, summarise what is left."""
        for event in events:
            if event.get("type") == "metrics":
                self.log.debug("%s: %s", self.job_id, format_event(event))
                self._pending = event
            else:
                self.log.info("%s: %s", self.job_id, format_event(event))
        if self._pending is not None and (done or self._throttle.ready()):
            self.log.info("%s: %s", self.job_id, metrics_summary(self._pending))
            self._pending = None
