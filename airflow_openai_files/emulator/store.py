"""Former home of the emulator's state, kept so old imports work (the benchmark seeds a database
with ``Store(data_dir).close()``). New code uses :func:`.app.open_state` and the backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_openai_files.emulator.db import new_id
from airflow_openai_files.emulator.errors import EmulatorError

__all__ = ["EmulatorError", "Store", "new_id"]


class Store:
    """Open the emulator's database on ``data_dir`` with every resource's schema; ``close()`` it."""

    def __init__(self, data_dir: str | Path, **config: Any) -> None:
        from airflow_openai_files.emulator.app import open_state
        from airflow_openai_files.emulator.config import EmulatorConfig

        self.state = open_state(Path(data_dir), EmulatorConfig(**config))

    def close(self) -> None:
        self.state.close()
