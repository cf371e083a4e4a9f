"""A local emulator of the OpenAI Files, Uploads, Batch and fine-tuning job APIs, for demos, tests and
offline DAG runs.

Importing this package is cheap: FastAPI and uvicorn are imported only when a server starts, and
asking for :class:`Emulator` without them installed raises an ``ImportError`` saying how to install
the ``emulator`` extra.

>>> from airflow_openai_files.emulator import Emulator
>>> with Emulator() as emu:          # uvicorn in a background thread, temporary data directory
...     emu.base_url                 # "http://127.0.0.1:<port>/v1"
...     emu.api_key                  # "sk-emulator" unless api_key= was given
...     emu.airflow_connection()     # the JSON value of AIRFLOW_CONN_<ID> pointing at it

From a shell: ``python -m airflow_openai_files.emulator --port 8089 --data-dir DIR``.

Layout (a per-resource service fake): :mod:`.app` wires the resources together and documents how
to add one; :mod:`.state` holds one running emulator's state and the backend contract;
``files/``, ``uploads/``, ``batches/`` and ``fine_tuning/`` each hold a ``backend`` (state and
rules) and ``routes`` (parse, call, render); :mod:`.errors` every error answered; :mod:`.config`
the configuration and route prefixes; :mod:`.middleware`, :mod:`.faults`, :mod:`.forms`, :mod:`.parsing`, :mod:`.db` the
plumbing; :mod:`.admin` the ``/_emulator`` API; :mod:`.server` the two ways of running it (:mod:`.thread`,
:mod:`.process`, sharing the accessors of :mod:`.handle`).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

__all__ = ["DEFAULT_API_KEY", "Emulator", "EmulatorProcess"]

#: import name -> distribution, the server stack of the ``emulator`` extra
SERVER_STACK = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}
INSTALL_HINT = "pip install 'airflow-provider-openai-files[emulator]'"

if TYPE_CHECKING:
    from airflow_openai_files.emulator.runner import DEFAULT_API_KEY, Emulator, EmulatorProcess


def require_server_stack() -> None:
    """Raise a helpful ``ImportError`` when the emulator's server stack is not installed."""
    missing = [dist for module, dist in SERVER_STACK.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(
            f"The OpenAI Files emulator needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'}"
            f" not installed. Install the emulator extra: {INSTALL_HINT}",
            name=missing[0],
        )


def __getattr__(name: str) -> Any:
    if name in __all__:
        require_server_stack()
        from airflow_openai_files.emulator import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
