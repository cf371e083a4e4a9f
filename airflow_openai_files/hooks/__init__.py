"""Hooks of the provider: :class:`OpenAIFilesHook` (sync, the worker) and :class:`OpenAIFilesAsyncHook`
(async, the triggerer).

Layout: ``base`` holds the Airflow glue of both (connection, settings, transport, ``test_connection``);
each resource's module (``files``: Files and Uploads, ``batches``, ``fine_tuning``, ``vector_stores``) holds
its sync API mixin and its async one, sharing module-level helpers (paths, id checks, query building); each hook is
the composition of its mixins. Adding a resource means adding its mixins to the bases below.

Importing this package loads neither requests nor httpx: the sync transport is built on first use,
the async transport (httpx) too, so the worker never loads httpx and the triggerer never loads requests.
"""

from __future__ import annotations

from airflow_openai_files.hooks.base import OpenAIFilesAsyncHookBase, OpenAIFilesHookBase
from airflow_openai_files.hooks.batches import AsyncBatchesAPIMixin, BatchesAPIMixin
from airflow_openai_files.hooks.files import AsyncFilesAPIMixin, FilesAPIMixin
from airflow_openai_files.hooks.fine_tuning import AsyncFineTuningAPIMixin, FineTuningAPIMixin
from airflow_openai_files.hooks.vector_stores import AsyncVectorStoresAPIMixin, VectorStoresAPIMixin
from airflow_openai_files.validation import validate_file_id


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


class OpenAIFilesAsyncHook(
    AsyncFilesAPIMixin,
    AsyncBatchesAPIMixin,
    AsyncFineTuningAPIMixin,
    AsyncVectorStoresAPIMixin,
    OpenAIFilesAsyncHookBase,
):
    """
    The triggerer's way to the API: every trigger polls through it (see :class:`OpenAIFilesAsyncHookBase`).

    :param openai_conn_id: the ``openai_files`` connection.
    :param deadline: ``time.monotonic()`` value after which no attempt starts and no retry waits.
    """

    async def __aenter__(self) -> OpenAIFilesAsyncHook:
        await super().__aenter__()
        return self


__all__ = ["OpenAIFilesAsyncHook", "OpenAIFilesHook", "validate_file_id"]
