"""What one running emulator holds: configuration, database, clock, faults, request log, and the
registered resource backends.

The backend contract (see also :mod:`airflow_openai_files.emulator.core.app`):

- a backend subclasses :class:`Backend`, sets ``name`` (``"files"``, ``"uploads"``, later
  ``"batches"``, ``"fine_tuning"``) and ``SCHEMA`` (``CREATE ... IF NOT EXISTS`` SQL, applied at
  construction), and receives the :class:`EmulatorState`: ``self.db`` (:class:`~.db.Database`:
  ``connection()``, ``write()``, ``tmp_path()``), ``self.clock`` (``now()``), ``self.config``
  (:class:`~.config.EmulatorConfig`) and ``self.state.backend("files")`` for the others;
- it holds all state and rules and raises :mod:`~.errors` constructors; it never sees a request;
- ``reset()`` forgets its rows and contents, ``close()`` stops its threads (both optional).

A backend that produces files (batch output, fine-tuning results) calls
``state.backend("files").create_service_file(purpose, filename, content)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from airflow_openai_files.emulator.core.config import EmulatorConfig
from airflow_openai_files.emulator.core.db import Clock, Database
from airflow_openai_files.emulator.core.faults import FaultRegistry

REQUEST_LOG_SIZE = 100_000

B = TypeVar("B", bound="Backend")


class Backend:
    """Base of every resource backend: state and rules, no HTTP."""

    name: ClassVar[str] = ""
    SCHEMA: ClassVar[str] = ""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.db = state.db
        self.clock = state.clock
        self.config = state.config
        if self.SCHEMA:
            self.db.ensure_schema(self.SCHEMA)

    def reset(self) -> None:
        """Forget every row and content of this resource."""

    def close(self) -> None:
        """Stop background work; the database is closed by the state afterwards."""


@dataclass
class EmulatorState:
    config: EmulatorConfig
    db: Database
    clock: Clock = field(default_factory=Clock)
    faults: FaultRegistry = field(default_factory=FaultRegistry)
    requests: deque[tuple[str, str, int]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    #: API requests answered since start (or the last reset); unlike the log it never drops old entries, so a
    #: benchmark can read request rates with one small call.
    request_count: int = 0
    backends: dict[str, Backend] = field(default_factory=dict)

    @classmethod
    def open(cls, data_dir: Path, config: EmulatorConfig) -> EmulatorState:
        return cls(config=config, db=Database(data_dir))

    @property
    def data_dir(self) -> Path:
        return self.db.data_dir

    def register(self, backend_class: type[B]) -> B:
        backend = backend_class(self)
        self.backends[backend.name] = backend
        return backend

    def backend(self, name: str) -> Any:
        return self.backends[name]

    def reset(self) -> None:
        """Empty the emulator as if it had just started: also the clock goes back to the wall clock
        (the clock only moves forward while objects exist whose times it judges; with none left,
        going back cannot contradict anything a client saw)."""
        self.faults.clear()
        self.clock.offset = 0.0
        self.requests.clear()
        self.request_count = 0
        # Dependants first (uploads point at files), so reverse registration order.
        for backend in reversed(list(self.backends.values())):
            backend.reset()
        self.db.clear_tmp()

    def close(self) -> None:
        for backend in reversed(list(self.backends.values())):
            backend.close()
        self.db.close()
