"""Run the emulator: in a background thread of this process (:class:`Emulator`, :mod:`.thread`) or as
a subprocess (:class:`EmulatorProcess`, :mod:`.process`), both with the same constructor and the same
public accessors (:class:`EmulatorBase`, :mod:`.handle`; the process answers them through the admin
API). This module keeps the historical import path of all of them."""

from __future__ import annotations

from airflow_openai_files.emulator.handle import DEFAULT_API_KEY, EmulatorBase
from airflow_openai_files.emulator.process import READY_LINE, EmulatorProcess
from airflow_openai_files.emulator.thread import Emulator

__all__ = ["DEFAULT_API_KEY", "READY_LINE", "Emulator", "EmulatorBase", "EmulatorProcess"]
