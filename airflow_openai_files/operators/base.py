"""The one mixin of every operator and sensor of the provider: connection id, hook, input checks.

Kept light for DAG parsing: the hook (and ``requests``, ``tenacity``) is imported when a task first
uses ``self.hook``, never when a DAG file imports an operator.
"""

from __future__ import annotations

import ast
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.validation import is_templated

if TYPE_CHECKING:
    from airflow_openai_files.hooks import OpenAIFilesHook


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


class OpenAIFilesMixin:
    """
    ``openai_conn_id`` (templated), a cached ``hook`` and the parse-time / run-time argument checks.

    Mix it in before the Airflow base class: ``class MyOperator(OpenAIFilesMixin, BaseOperator)``.
    The default connection is ``OpenAIFilesHook.default_conn_name`` (``limits.DEFAULT_CONN_ID``).
    """

    task_id: str

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
