"""``wait_until``: the one wait loop on the worker, the twin of the triggers' loop (``triggers/base.py``).

Every ``deferrable=False`` path (the hook's wait for a processed file, the batch and fine-tuning
operators, the file checks before a job) waits through it, so they share one clock (monotonic), one
outcome (the first :class:`~airflow_openai_files.resources.Verdict` that is not ``waiting``) and one
timeout error (:class:`~airflow_openai_files.exceptions.OpenAIFilesTimeoutError`, worded by
:func:`timeout_message` as the trigger's ``timeout`` event is).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_openai_files.exceptions import OpenAIFilesTimeoutError
from airflow_openai_files.resources import Verdict

T = TypeVar("T")

_log = logging.getLogger(__name__)


def timeout_message(waited: float, what: str, last: str) -> str:
    """``"Timed out after 600s waiting for batch_abc to finish (Batch batch_abc is in_progress: ...)"``."""
    return f"Timed out after {waited:.0f}s waiting for {what} ({last})"


def wait_until(
    fetch: Callable[[], T],
    judge: Callable[[T], Verdict],
    *,
    poll_interval: float,
    timeout: float,
    describe: Callable[[T], str],
    what: str,
    first: T | None = None,
    log: Any = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> tuple[T, Verdict]:
    """
    Poll until ``judge`` says the wait is over; return the last object and its verdict.

    :param fetch: one look at the object (a hook call); its errors propagate (the hook already retried).
    :param judge: the resource's rule, e.g. ``lambda b: batches.judge(b, target)``.
    :param poll_interval: seconds between two looks.
    :param timeout: seconds to wait at most, on the monotonic clock from the call.
    :param describe: the log line for an object; logged when it changes, so a long wait logs progress
        (counts, status) without repeating itself.
    :param what: what is waited for, in words (``"batch_abc to finish"``), for the timeout message.
    :param first: an object already fetched (just created): judged before the first ``fetch``.
    :param log: the logger (the task's); this module's by default.
    :raises OpenAIFilesTimeoutError: ``timeout`` ran out first; the message names the object and what the
        last look saw. Not final: the remote work may still end, and a task retry may resume it.
    """
    log = log or _log
    started = time.monotonic()
    end = started + max(0.0, float(timeout))
    obj = first if first is not None else fetch()
    last_line = ""
    while True:
        verdict = judge(obj)
        line = describe(obj)
        if line != last_line:
            log.info("%s", line)
            last_line = line
        if verdict.done:
            return obj, verdict
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise OpenAIFilesTimeoutError(timeout_message(time.monotonic() - started, what, verdict.message))
        sleep(min(poll_interval, remaining))
        obj = fetch()
