"""Imports whose location differs across the supported Airflow releases, resolved once.

Every module of the package imports these names from here, never from ``airflow`` directly, so
that supporting another Airflow release means changing this module only. What moved (checked in
each release's installed modules):

- Airflow 3.1 (task SDK 1.1): ``airflow.sdk`` has no ``conf`` and ``airflow.sdk.exceptions`` holds
  only ``AirflowException``, ``AirflowNotFoundException`` and a few internals; ``AirflowFailException``,
  ``AirflowSkipException``, ``AirflowSensorTimeout``, ``AirflowRescheduleException`` and
  ``TaskDeferred`` live in ``airflow.exceptions``, which is also what the 3.1 task runner catches.
  ``airflow.sdk.log`` has ``mask_secret`` but no ``amask_secret``.
- Airflow 3.2 (task SDK 1.2): ``conf`` and all the exceptions are in the SDK; there is still no
  ``amask_secret``, no task state store and the scheduler ignores ``start_from_trigger``.
- Airflow 3.3 (task SDK 1.3): the task state store (AIP-103, ``context["task_state_store"]``),
  ``ResumableJobMixin`` and ``NEVER_EXPIRE`` in ``airflow.sdk``, ``amask_secret``, and the scheduler
  starts operators with ``start_from_trigger = True`` directly in the triggerer.

On 3.3 the SDK's exception classes are the very objects ``airflow.exceptions`` exports, so catching
one of ours catches Airflow's on every release. The SDK location is always tried first: when an
older location goes away, nothing here needs to change.
"""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import airflow

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context, conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )


def _first(name: str, *modules: str) -> Any:
    """``name`` from the first of ``modules`` that has it (newest location first)."""
    for module in modules:
        try:
            value = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if value is not None:
            return value
    raise ImportError(f"cannot import {name!r} from any of {', '.join(modules)}: is this Airflow release supported?")


def _release(version: str) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise ImportError(f"cannot read Airflow's version {version!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


#: (major, minor, micro) of the running Airflow, e.g. (3, 1, 0); pre-release suffixes are ignored.
AIRFLOW_VERSION: tuple[int, int, int] = _release(airflow.__version__)
AIRFLOW_V_3_2_PLUS = AIRFLOW_VERSION >= (3, 2)
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3)

if not TYPE_CHECKING:
    conf = _first("conf", "airflow.sdk", "airflow.configuration")
    AirflowException = _first("AirflowException", "airflow.sdk.exceptions", "airflow.exceptions")
    AirflowFailException = _first("AirflowFailException", "airflow.sdk.exceptions", "airflow.exceptions")
    AirflowNotFoundException = _first("AirflowNotFoundException", "airflow.sdk.exceptions", "airflow.exceptions")
    AirflowRescheduleException = _first("AirflowRescheduleException", "airflow.sdk.exceptions", "airflow.exceptions")
    AirflowSensorTimeout = _first("AirflowSensorTimeout", "airflow.sdk.exceptions", "airflow.exceptions")
    AirflowSkipException = _first("AirflowSkipException", "airflow.sdk.exceptions", "airflow.exceptions")
    TaskDeferred = _first("TaskDeferred", "airflow.sdk.exceptions", "airflow.exceptions")


def mask_secret(secret: str, name: str | None = None) -> None:
    """``airflow.sdk.log.mask_secret`` (every supported release), looked up at call time so that a
    test patching Airflow's function sees the call."""
    import airflow.sdk.log

    airflow.sdk.log.mask_secret(secret, name)


async def amask_secret(secret: str) -> None:
    """Register ``secret`` with the log masker from async code (a trigger).

    Airflow 3.3 has ``airflow.sdk.log.amask_secret``, which in the triggerer tells the supervisor
    without blocking the event loop; before it, ``mask_secret`` only touches the in-process masker.
    """
    import airflow.sdk.log

    amask = getattr(airflow.sdk.log, "amask_secret", None)
    if amask is None:
        mask_secret(secret)
        return
    await amask(secret)


#: Pass as ``retention`` to ``task_state_store.set()`` for a key that never expires (3.3+).
NEVER_EXPIRE: timedelta = _first("NEVER_EXPIRE", "airflow.sdk") if AIRFLOW_V_3_3_PLUS else timedelta.max

#: True where the scheduler honours ``start_from_trigger``: Airflow 3.3 on. On 3.1 and 3.2 the class
#: attribute exists but the scheduler's code path is disabled, and the task simply runs on a worker.
SUPPORTS_START_FROM_TRIGGER = AIRFLOW_V_3_3_PLUS


def _outside_a_task(err: ImportError) -> bool:
    return "SUPERVISOR_COMMS" in str(err)


def _in_a_task() -> bool:
    """True inside a running task (the supervisor's channel exists), where Airflow reads the database."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def _from_metadata_db(conn_id: str) -> tuple[Any, str]:
    """``(connection, "")`` from the metadata database, or ``(None, why not)``.

    What ``airflow connections get`` reads. A task never gets here: it asks the API server, which
    reads the database for it. A script on a machine with the database configured does.
    """
    try:
        from airflow.models.connection import Connection as DbConnection
        from airflow.utils.session import create_session
    except ImportError as err:
        return None, f"and this installation cannot read the metadata database ({err})"
    url = str(conf.get("database", "sql_alchemy_conn", fallback="") or "")
    if url.startswith("sqlite:///"):
        import os

        path = url.removeprefix("sqlite:///").split("?", 1)[0]
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            # Connecting would create an empty database file: say so instead.
            return None, f"and there is no metadata database at {path} (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"
    try:
        with create_session() as session:
            row = session.query(DbConnection).filter(DbConnection.conn_id == conn_id).one_or_none()
            if row is not None:
                row.password, row.extra  # noqa: B018 - decrypt while the session is open
                session.expunge(row)
    except Exception as err:
        return None, (
            "and outside a running task Airflow 3 does not read the metadata database for you; reading it "
            f"directly failed here ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        )
    if row is None:
        return None, "nor in the metadata database"
    return row, ""


def get_connection(conn_id: str) -> Connection:
    """``BaseHook.get_connection``, plus the metadata database outside a running task, on every release.

    In a task, Airflow 3 reads environment variables, secrets backends and then (through the API
    server) the metadata database. Outside one (a script, a notebook, a test) it reads only the
    first two: Airflow 3.3 answers ``AirflowNotFoundException`` for a connection that is defined in
    the database, 3.1 an ImportError about the supervisor's channel. There the database is read
    directly, as ``airflow connections get`` does, and a connection found nowhere gets a message
    that says where was looked and why the database was not.
    """
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except ImportError as err:
        if not _outside_a_task(err):
            raise
        first: Exception = err
    except AirflowNotFoundException as err:
        if _in_a_task():
            raise
        first = err
    found, why = _from_metadata_db(conn_id)
    if found is not None:
        return found
    raise AirflowNotFoundException(
        f"The conn_id `{conn_id}` isn't defined in environment variables or secrets backends, {why}"
    ) from first


async def aget_connection(conn_id: str) -> Connection:
    """``BaseHook.aget_connection`` (every supported release has it) that works outside a triggerer too.

    Airflow 3.1's async lookup imports the supervisor's channel before it reads environment
    variables or secrets backends, so outside a task or triggerer it fails even for a connection
    defined in the environment; the synchronous lookup, run in a thread, reads them first.
    """
    import asyncio

    from airflow.sdk import BaseHook, Connection

    try:
        return await BaseHook.aget_connection(conn_id)
    except ImportError as err:
        if not _outside_a_task(err):
            raise
    try:
        return await asyncio.to_thread(Connection.get, conn_id)
    except ImportError as err:
        if not _outside_a_task(err):
            raise
        raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined") from err


def task_state_store(context: Context | dict[str, Any]) -> Any | None:
    """The task's state store (AIP-103, Airflow 3.3+), or None where Airflow has none.

    The store is scoped to (dag_id, run_id, task_id, map_index) and outlives a try: what try 1
    ``set()`` is what try 2 ``get()`` returns, unlike XCom, which Airflow clears before every retry.
    Its methods are ``get(key, default=None)``, ``set(key, value, *, retention=None)`` (value JSON,
    not None), ``delete(key)`` and ``clear()``; on 3.3.2 they are synchronous only (no ``aget``)
    and exist only on a worker (``execute`` and the method a trigger resumes), never in a trigger.
    """
    return context.get("task_state_store")


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "NEVER_EXPIRE",
    "SUPPORTS_START_FROM_TRIGGER",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskDeferred",
    "aget_connection",
    "amask_secret",
    "conf",
    "get_connection",
    "mask_secret",
    "task_state_store",
]
