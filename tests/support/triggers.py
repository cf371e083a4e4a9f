"""The one way tests run a trigger: as the triggerer does, from its serialized form, to its events.

The triggerer never runs the object an operator built: it stores ``serialize()``'s classpath and
keyword arguments and builds a new trigger from them, possibly in another process. Running the
rebuilt trigger proves that the serialized form carries everything the trigger needs (a field left
out of ``serialize()`` fails here, not in production). ``serialized=False`` runs the object itself,
for a test that stands a collaborator in on the instance.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.exceptions import TaskDeferred

#: A trigger that has not fired by then is a bug in the test or the trigger, not a slow machine.
DEFAULT_TIMEOUT = 120.0


def rebuild(trigger: Any) -> Any:
    """A new trigger built from ``trigger.serialize()``, as the triggerer builds it."""
    from importlib import import_module

    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(import_module(module), name)(**kwargs)


def run_trigger(
    trigger: Any, *, serialized: bool = True, timeout: float = DEFAULT_TIMEOUT, max_events: int | None = None
) -> list[dict[str, Any]]:
    """The payloads ``trigger`` yields until its ``run()`` ends (or ``max_events`` were yielded).

    ``trigger`` may be the :class:`TaskDeferred` an operator raised. ``timeout`` bounds the whole run.
    """

    async def bounded() -> list[dict[str, Any]]:
        return await asyncio.wait_for(collect(trigger, serialized=serialized, max_events=max_events), timeout)

    return asyncio.run(bounded())


async def collect(trigger: Any, *, serialized: bool = True, max_events: int | None = None) -> list[dict[str, Any]]:
    """:func:`run_trigger` inside a running event loop, for a scenario that does more meanwhile."""
    if isinstance(trigger, TaskDeferred):
        trigger = trigger.trigger
    if serialized:
        trigger = rebuild(trigger)
    payloads: list[dict[str, Any]] = []
    async for event in trigger.run():
        payloads.append(event.payload)
        if max_events is not None and len(payloads) >= max_events:
            break
    return payloads


def trigger_event(trigger: Any, **kwargs: Any) -> dict[str, Any]:
    """The one payload ``trigger`` yields (a trigger fires once; more than one event is a bug)."""
    payloads = run_trigger(trigger, **kwargs)
    assert len(payloads) == 1, f"a trigger fires once, this one yielded {len(payloads)} events: {payloads}"
    return payloads[0]
