"""A local emulator of the OpenAI Files and Uploads API, for demos, tests and offline DAG runs.

Importing this package is cheap: FastAPI and uvicorn are imported only when a server starts.

>>> from airflow_openai_files.emulator import Emulator
>>> with Emulator() as emu:          # uvicorn in a background thread, temporary data directory
...     emu.base_url                 # "http://127.0.0.1:<port>/v1"
...     emu.api_key                  # "sk-emulator" unless api_key= was given

From a shell: ``python -m airflow_openai_files.emulator --port 8089 --data-dir DIR``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["DEFAULT_API_KEY", "Emulator", "EmulatorProcess"]

if TYPE_CHECKING:
    from airflow_openai_files.emulator.server import DEFAULT_API_KEY, Emulator, EmulatorProcess


def __getattr__(name: str) -> Any:
    if name in __all__:
        from airflow_openai_files.emulator import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
