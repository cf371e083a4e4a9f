"""Each resource's rules in one pure module: ids, statuses, judging, messages. No HTTP, no Airflow.

Every module here has the same shape, so the sensor, trigger and operator bases (and the emulator) can
be written once against it:

* ``KIND``: the human noun (``"file"``, ``"batch"``, ``"fine-tuning job"``), also the ``kind`` the id
  validator words its refusals with; ``ID_PATTERN``: what the service's ids look like.
* ``TERMINAL``, ``SUCCESS`` (the default target), ``FAILURE``: status sets.
* ``check_target(statuses) -> tuple[str, ...]``: a user's target statuses, checked (``ValueError``
  names the valid ones); the tuple is every status that counts as reached.
* ``judge(obj, target) -> Verdict``: is a wait for ``target`` over, and how does it read.
* ``describe(obj) -> str``: one log line (id, status, counts).
* ``not_found_message(object_id) -> str``: how a 404 for that object reads.

A new resource adds a module of that shape; its sensor, trigger and operator stay thin.

Modules may also hold the service's vocabulary the emulator mints and answers with: ``ID_PREFIX``, a
lifecycle (``LIFECYCLE``, ``ACTIVE``, ``CANCELLABLE`` of a batch), purposes (``INPUT_PURPOSE``,
``TRAINING_PURPOSE``, ...). The line between the two sides: the *vocabulary and limits* of the service
(status names and sets, id prefixes and patterns, purposes, sizes; see also :mod:`airflow_openai_files.limits`)
are shared, so the client and the emulator cannot drift apart on what a word means; the *behaviour* is
not. The emulator keeps its state machine, timing and answers in ``emulator/`` and never calls
``judge()``/``describe()`` (the client's judging logic, which it must be able to contradict); the client
never reads the emulator. Standard library, ``limits`` and each other only (``scripts/check_structure.py``),
so the emulator's subprocess imports these without loading Airflow.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

State = Literal["success", "error", "waiting"]


class Verdict(NamedTuple):
    """What a wait concludes from one look at an object: ``state`` and the line that says why."""

    state: State
    message: str

    @property
    def done(self) -> bool:
        """The wait is over (either way): nothing left to poll for."""
        return self.state != "waiting"


def check_statuses(statuses: Any, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``statuses`` (one status or several) as a tuple, every one in ``allowed``; ``ValueError`` otherwise."""
    chosen = (statuses,) if isinstance(statuses, str) else tuple(statuses or ())
    if not chosen or any(status not in allowed for status in chosen):
        raise ValueError(f"{what} must be one or more of {', '.join(allowed)}; got {statuses!r}")
    return tuple(str(status) for status in chosen)
