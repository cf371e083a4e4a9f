"""Sensors of the provider."""

from __future__ import annotations

from airflow_openai_files.sensors.files import OpenAIFileSensor

__all__ = ["OpenAIFileSensor"]
