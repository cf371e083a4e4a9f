"""The errors of the vector store routes, in the service's shape (see :mod:`..core.errors`)."""

from __future__ import annotations

from airflow_openai_files.emulator.core.errors import EmulatorError, _short, no_such_file

__all__ = ["EmulatorError", "no_such_file"]


# ---- vector stores --------------------------------------------------------------------------------
def no_such_vector_store(store_id: str) -> EmulatorError:
    return EmulatorError(404, f"No vector store found with id '{_short(store_id)}'.", param="vector_store_id")


def no_such_vector_store_file(store_id: str, file_id: str) -> EmulatorError:
    return EmulatorError(
        404, f"No file found with id '{_short(file_id)}' in vector store '{_short(store_id)}'.", param="file_id"
    )


def no_such_vector_store_file_batch(batch_id: str) -> EmulatorError:
    return EmulatorError(404, f"No file batch found with id '{_short(batch_id)}'.", param="batch_id")


def bad_vector_store_cursor(kind: str, name: str, cursor: str) -> EmulatorError:
    return EmulatorError(400, f"No {kind} found with id '{_short(cursor)}'.", param=name)


def vector_store_expired(store_id: str) -> EmulatorError:
    return EmulatorError(
        400, f"Vector store {_short(store_id)} is expired and cannot be used.", param="vector_store_id"
    )


def vector_store_batch_not_cancellable(status: str) -> EmulatorError:
    return EmulatorError(400, f"Cannot cancel a file batch with status '{status}'.", param="batch_id")


def vector_store_attach_rate(limit: int) -> EmulatorError:
    return EmulatorError(
        429,
        f"Rate limit reached for vector store file attachments: {limit} files per minute. Please try again later.",
        type="requests",
        code="rate_limit_exceeded",
    )
