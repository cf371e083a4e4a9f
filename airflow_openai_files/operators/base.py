"""The one mixin of every operator and sensor of the provider: connection id, hook, input checks, and
the deferral plumbing (defer to a trigger, read its one event) shared by the operators and sensors that wait.

Kept light for DAG parsing: the hook (and ``requests``, ``tenacity``) is imported when a task first
uses ``self.hook``, never when a DAG file imports an operator.
"""

from __future__ import annotations

import ast
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.validation import is_templated

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

    from airflow_openai_files.hooks import OpenAIFilesHook

#: Added to the scheduler's deferral timeout over the trigger's own, so the trigger's timeout event (which
#: names the object and what it last saw) wins over the scheduler's bare "trigger timeout".
DEFER_TIMEOUT_MARGIN = 60.0


class TriggerOutcome(NamedTuple):
    """A trigger's one event, read: ``status`` (``success`` | ``error`` | ``timeout``), ``message``, and
    the object last fetched (``None`` when no poll answered)."""

    status: str
    message: str
    obj: dict[str, Any] | None


def _parse_rendered(text: str) -> Any:
    """A rendered XCom: ``"{'id': 'file-1', ...}"`` (Jinja renders a dict with ``str()``) or JSON."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # literals only: never evaluates code
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _collect_ids(value: Any, kind: str, out: list[str]) -> None:
    what = f"Invalid {kind} id"
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            parsed = _parse_rendered(text)
            if parsed is None or isinstance(parsed, str):
                raise OpenAIFilesValidationError(
                    f"{what} {value!r}: it looks like a rendered dict or list but is not one"
                )
            _collect_ids(parsed, kind, out)
            return
        if not text:
            raise OpenAIFilesValidationError(f"{what} {value!r}: expected an id, an object dict or a list of them")
        if value not in out:  # as given: the hook refuses ids with whitespace or control characters
            out.append(value)
        return
    if isinstance(value, Mapping):
        if "id" not in value:
            raise OpenAIFilesValidationError(f"{what}: a dict without an 'id' key (keys {sorted(map(str, value))[:5]})")
        _collect_ids(str(value["id"]) if value["id"] is not None else "", kind, out)
        return
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise OpenAIFilesValidationError(f"{what} {value!r}: expected an id, an object dict or a list of them")
    for item in _items(value):
        _collect_ids(item, kind, out)


def _items(value: Iterable[Any]) -> Iterable[Any]:
    """
    The items of a list, a tuple, Airflow's ``LazyXComSequence`` or ``_MapResult``, a generator...

    A sequence is read by index up to its length: iterating Airflow's lazy sequences reads one item past
    the end to find it (an ``IndexError`` from the API server's 404), and the task SDK logs that 404 as
    an ``[error] XCom not found ... offset=N`` line in a task that succeeds.
    """
    if isinstance(value, Sequence):
        return (value[index] for index in range(len(value)))
    return value


def ids_from(value: Any, *, kind: str = "file") -> list[str]:
    """
    Every id in ``value``, in order, without duplicates: the one parser of id-taking arguments.

    Accepts an id (``"file-abc"``), an object dict with an ``id`` (an upload's whole XCom), the
    string Jinja renders from such a dict or list (``"{'id': 'file-abc', ...}"``), and any
    sequence or iterable of those, including Airflow's lazy ones (``LazyXComSequence`` from a
    mapped task's output, ``_MapResult`` from ``.map()``). Refusals are
    ``OpenAIFilesValidationError`` (fail on the first try): ``"Invalid <kind> id ..."``, e.g.
    ``kind="batch"``. The ids' format is checked by the hook (``validate_file_id``) before any request.
    """
    ids: list[str] = []
    _collect_ids(value, kind, ids)
    return ids


def id_from(value: Any, *, kind: str = "file") -> str:
    """Exactly one id from ``value`` (see :func:`ids_from`); a list of several is refused."""
    ids = ids_from(value, kind=kind)
    if len(ids) != 1:
        raise OpenAIFilesValidationError(
            f"Expected one {kind} id, got {len(ids)}"
            + (f" ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})" if ids else "")
            + ": map over a list with .expand() instead"
        )
    return ids[0]


#: Add to an operator's ``template_fields``.
CONN_TEMPLATE_FIELDS: tuple[str, ...] = ("openai_conn_id",)


class OpenAIBaseOperatorMixin:
    """
    ``openai_conn_id`` (templated), a cached ``hook``, the parse-time / run-time argument checks, and
    :meth:`defer_to_trigger` / :meth:`trigger_outcome` for tasks that wait in the triggerer.

    The base of every operator and sensor of the provider; mix it in before the Airflow base class:
    ``class MyOperator(OpenAIBaseOperatorMixin, BaseOperator)``. The default connection is
    ``OpenAIFilesHook.default_conn_name`` (``limits.DEFAULT_CONN_ID``).
    """

    task_id: str
    defer: Callable[..., Any]

    def __init__(self, *, openai_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.openai_conn_id = openai_conn_id

    @functools.cached_property
    def hook(self) -> OpenAIFilesHook:
        from airflow_openai_files.hooks import OpenAIFilesHook

        return OpenAIFilesHook(openai_conn_id=self.openai_conn_id)

    @staticmethod
    def check_at_parse(task_id: Any, check: Callable[..., Any], *values: Any) -> None:
        """
        Run ``check(*values)`` when the DAG is parsed, unless a value is still a Jinja template.

        The same check runs again at the start of ``execute`` on the rendered values, so a literal
        mistake fails at parse time and a templated one on the task's first try.
        """
        if any(is_templated(value) for value in values):
            return
        try:
            check(*values)
        except OpenAIFilesValidationError as err:
            raise err.reworded(f"{task_id}: {err.message}") from None

    def check_at_run(self, check: Callable[..., Any], *values: Any) -> Any:
        """Run ``check`` on rendered values; a refusal names the task."""
        try:
            return check(*values)
        except OpenAIFilesValidationError as err:
            raise err.reworded(f"{self.task_id}: {err.message}") from None

    # -- waiting in the triggerer ------------------------------------------------------------------------

    def defer_to_trigger(self, trigger: BaseTrigger, *, timeout: float) -> NoReturn:
        """
        Hand the wait to ``trigger`` and resume in ``execute_complete(context, event)``.

        ``timeout`` is the trigger's own (seconds); the scheduler's deferral timeout gets
        :data:`DEFER_TIMEOUT_MARGIN` on top, so the trigger's clearer ``timeout`` event comes first.
        """
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=max(0.0, timeout) + DEFER_TIMEOUT_MARGIN),
        )
        raise AssertionError("defer() returned")  # pragma: no cover - defer always raises TaskDeferred

    def trigger_outcome(self, event: dict[str, Any] | None, key: str) -> TriggerOutcome:
        """
        Read the one event of a polling trigger (:class:`~airflow_openai_files.triggers.OpenAIPollingTrigger`).

        :param key: where the payload carries the object (``"file"``, ``"batch"``, ``"job"``).
        :raises AirflowException: resumed without an event (may heal: a retry waits again).
        :raises AirflowFailException: an event this package's triggers never send.
        """
        from airflow_openai_files._compat import AirflowException, AirflowFailException

        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        status = event.get("status")
        message = str(event.get("message") or "")
        obj = event.get(key)
        if status not in ("success", "error", "timeout") or (status == "success" and not isinstance(obj, dict)):
            raise AirflowFailException(f"{self.task_id}: the trigger reported {event!r}")
        return TriggerOutcome(str(status), message, obj if isinstance(obj, dict) else None)
