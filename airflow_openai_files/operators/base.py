"""The one mixin of every operator and sensor of the provider: connection id, hook, input checks.

Kept light for DAG parsing: the hook (and ``requests``, ``tenacity``) is imported when a task first
uses ``self.hook``, never when a DAG file imports an operator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.limits import DEFAULT_CONN_ID
from airflow_openai_files.validation import is_templated

if TYPE_CHECKING:
    from airflow_openai_files.hooks import OpenAIFilesHook

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
