"""Scripted line-level failures of batches: the emulator's way to exercise a client's line retries."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

#: Bodies of scripted line failures, by status (the service's wording where known, see core/faults.py).
LINE_FAULT_ERRORS = {
    400: ("Invalid request (scripted line failure).", "invalid_request_error", "invalid_request"),
    408: ("Request timed out.", "timeout", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
}


class LineFaults:
    """
    Scripted line-level failures (admin API ``POST /_emulator/batches/line_faults``).

    A fault answers chosen lines of any batch with an error ``status`` instead of the model: the lines whose
    ``custom_id`` is in ``custom_ids``, or a deterministic ``fraction`` of all lines (by a hash of the id).
    Each chosen ``custom_id`` fails its first ``times`` attempts (across batches), then is answered normally,
    so a client's retry of the line can succeed. The line lands in the error file as the service writes a
    failed request: ``response.status_code`` and an ``{"error": {...}}`` body.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[dict[str, Any]] = []
        self._hits: dict[tuple[int, str], int] = {}

    def add(
        self,
        *,
        status: int = 429,
        custom_ids: list[str] | None = None,
        fraction: float | None = None,
        times: int = 1,
        code: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        if not 400 <= int(status) <= 599:
            raise ValueError(f"a line fault's status must be 4xx or 5xx, got {status!r}")
        if (custom_ids is None) == (fraction is None):
            raise ValueError("a line fault names either custom_ids or a fraction of lines")
        if fraction is not None and not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        if int(times) < 1:
            raise ValueError("times must be at least 1")
        default_message, type_, default_code = LINE_FAULT_ERRORS.get(
            int(status), (f"Scripted line failure (HTTP {status}).", "invalid_request_error", None)
        )
        fault = {
            "status": int(status),
            "custom_ids": sorted(set(custom_ids)) if custom_ids is not None else None,
            "fraction": float(fraction) if fraction is not None else None,
            "times": int(times),
            "_ids": frozenset(custom_ids or ()),
            "error": {
                "message": message or default_message,
                "type": type_,
                "param": None,
                "code": code or default_code,
            },
        }
        with self._lock:
            self._faults.append(fault)
        return {k: v for k, v in fault.items() if k != "_ids"}

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{k: v for k, v in fault.items() if k != "_ids"} for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._hits.clear()

    def answer(self, custom_id: str) -> tuple[int, dict[str, Any]] | None:
        """``(status, body)`` when a fault takes this line now, else None (the model answers it)."""
        with self._lock:
            for number, fault in enumerate(self._faults):
                if fault["custom_ids"] is not None:
                    chosen = custom_id in fault["_ids"]
                else:
                    share = int(hashlib.sha256(custom_id.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16)
                    chosen = share / 16**8 < fault["fraction"]
                if not chosen:
                    continue
                hits = self._hits.get((number, custom_id), 0)
                if hits >= fault["times"]:
                    continue
                self._hits[(number, custom_id)] = hits + 1
                return fault["status"], {"error": dict(fault["error"])}
        return None
