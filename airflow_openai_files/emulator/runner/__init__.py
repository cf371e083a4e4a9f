"""The two ways of running the emulator, with the same constructor and the same public accessors
(:class:`~.handle.EmulatorBase`): in a background thread of this process (:class:`Emulator`) or as a
subprocess (:class:`EmulatorProcess`, which answers the accessors through the admin API)."""

from __future__ import annotations

from airflow_openai_files.emulator.runner.handle import DEFAULT_API_KEY, EmulatorBase
from airflow_openai_files.emulator.runner.process import READY_LINE, EmulatorProcess
from airflow_openai_files.emulator.runner.thread import Emulator

__all__ = ["DEFAULT_API_KEY", "READY_LINE", "Emulator", "EmulatorBase", "EmulatorProcess"]
