"""Imports whose location differs across the supported Airflow releases, resolved once.

Every module of the package imports these names from here, never from ``airflow`` directly, so
that supporting another Airflow release means changing this module only.
"""

from __future__ import annotations

from airflow.sdk import conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
    "conf",
]
