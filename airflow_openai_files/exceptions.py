"""Errors raised by the provider."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException


class OpenAIFilesError(AirflowException):
    """
    A Files API call failed, or its input was refused before any request.

    :param message: what went wrong, for the person on call.
    :param status_code: the HTTP status of the last response, if one was received.
    :param error_type: OpenAI's ``error.type``.
    :param code: OpenAI's ``error.code``.
    :param param: OpenAI's ``error.param``.
    :param request_id: the ``x-request-id`` of the last response.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException types it HTTPStatus
        self.error_type = error_type
        self.code = code
        self.param = param
        self.request_id = request_id
        super().__init__(self._render())

    def reworded(self, message: str) -> OpenAIFilesError:
        """A plain OpenAIFilesError with a new message and this error's status, type, code, param and request id."""
        return OpenAIFilesError(
            message,
            status_code=self.status_code,
            error_type=self.error_type,
            code=self.code,
            param=self.param,
            request_id=self.request_id,
        )

    def _render(self) -> str:
        details = [
            f"{name}={value}"
            for name, value in (
                ("status", self.status_code),
                ("type", self.error_type),
                ("code", self.code),
                ("param", self.param),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the structured fields when the error crosses a process boundary.
        return (_rebuild, (self.message, self.__dict__.copy()))


def _rebuild(message: str, state: dict[str, Any]) -> OpenAIFilesError:
    err = OpenAIFilesError(message)
    err.__dict__.update(state)
    return err


class OpenAIFilesValidationError(OpenAIFilesError, ValueError):
    """Input refused before any request was sent (bad path, purpose, id, JSONL content...)."""


class OpenAIFilesConfigError(OpenAIFilesError, ValueError):
    """The ``openai_files`` connection is missing or malformed."""
