"""Hooks of the provider: :class:`OpenAIFilesHook` (sync) and ``OpenAIFilesAsyncHook`` (triggers).

Layout: ``base`` holds the Airflow glue (connection, settings, transport, ``test_connection``);
each resource's API methods live in a mixin of its own module (``files``: Files and Uploads), and
the hook is their composition. Adding a resource means adding a mixin to the bases below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_openai_files.hooks.base import OpenAIFilesHookBase
from airflow_openai_files.hooks.batches import BatchesAPIMixin
from airflow_openai_files.hooks.files import FilesAPIMixin
from airflow_openai_files.hooks.fine_tuning import FineTuningAPIMixin
from airflow_openai_files.hooks.vector_stores import VectorStoresAPIMixin
from airflow_openai_files.validation import validate_file_id

if TYPE_CHECKING:
    from airflow_openai_files.hooks.asynchronous import OpenAIFilesAsyncHook


class OpenAIFilesHook(FilesAPIMixin, BatchesAPIMixin, FineTuningAPIMixin, VectorStoresAPIMixin, OpenAIFilesHookBase):
    """
    Talks to the OpenAI Files API with the key and settings of an ``openai_files`` connection.

    :param openai_conn_id: the Airflow connection to use.
    :param max_retries: retries after the first attempt; defaults to the connection's ``max_retries`` (5).
    :param timeout: total seconds for one attempt of one request; defaults to the connection's ``timeout``.
    :param multipart_threshold: above this many bytes ``upload_file`` uses the Uploads API.
    :param part_size: bytes per Uploads API part (at most 64 MiB).
    :param max_concurrency: parts sent at once by the Uploads API.
    """


def __getattr__(name: str) -> Any:
    # Lazy: the async hook pulls httpx, which the worker side does not need.
    if name == "OpenAIFilesAsyncHook":
        from airflow_openai_files.hooks.asynchronous import OpenAIFilesAsyncHook

        return OpenAIFilesAsyncHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OpenAIFilesAsyncHook", "OpenAIFilesHook", "validate_file_id"]
