"""Every error the provider raises, in one module.

The rule for Airflow task retries: an error that cannot heal by itself fails the task on its first
try, so a DAG does not wait through retries (and pay for them) to learn what the first answer said.
Those errors are also :class:`AirflowFailException` instances, which Airflow never retries:

* :class:`OpenAIFilesValidationError` - input refused before any request (path, purpose, id, JSONL);
* :class:`OpenAIFilesConfigError` - the connection is missing or malformed;
* :class:`OpenAIFilesRequestError` - the service answered with a final "no": HTTP 400, 401, 403,
  404 or 422, ``insufficient_quota``, a refused download; a 404 is the narrower
  :class:`OpenAIFilesNotFoundError`, worded once, by the transports, for the object the path names.

Everything else that is an :class:`OpenAIFilesError` (connection errors, timeouts, 408/409/429/5xx
once the hook's own retry budget is spent, and :class:`OpenAIFilesTimeoutError`, a caller's deadline
running out) stays a plain :class:`AirflowException`, so Airflow's task retries may act. The message
of an error is the same on every path that reaches it.
"""

from __future__ import annotations

from typing import Any

from airflow_openai_files._compat import AirflowException, AirflowFailException

#: Statuses that mean the request itself is wrong; sending it again cannot succeed.
FATAL_STATUSES = frozenset({400, 401, 403, 404, 422})
#: ``error.code`` / ``error.type`` values that mean the account cannot pay for the call.
FATAL_CODES = frozenset({"insufficient_quota"})


class OpenAIFilesError(AirflowException):
    """
    A Files API call failed, or its input was refused before any request.

    :param message: what went wrong, for the person on call.
    :param http_status: the HTTP status of the last response, if one was received.
    :param error_type: OpenAI's ``error.type``.
    :param code: OpenAI's ``error.code``.
    :param param: OpenAI's ``error.param``.
    :param request_id: the ``x-request-id`` of the last response.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.http_status = http_status
        self.error_type = error_type
        self.code = code
        self.param = param
        self.request_id = request_id
        super().__init__(self._render())

    def reworded(self, message: str, *, cls: type[OpenAIFilesError] | None = None) -> OpenAIFilesError:
        """The same error (class, status, type, code, param, request id) with a new message."""
        target = cls or type(self)
        err = target.__new__(target)
        err.__dict__.update(self.__dict__)
        err.message = message
        Exception.__init__(err, err._render())
        return err

    def _render(self) -> str:
        details = [
            f"{name}={value}"
            for name, value in (
                ("status", self.http_status),
                ("type", self.error_type),
                ("code", self.code),
                ("param", self.param),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the class and the structured fields when the error crosses a process boundary.
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[OpenAIFilesError], message: str, state: dict[str, Any]) -> OpenAIFilesError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err._render())
    return err


class OpenAIFilesValidationError(OpenAIFilesError, AirflowFailException, ValueError):
    """Input refused before any request was sent (bad path, purpose, id, JSONL content...); never retried."""


class OpenAIFilesConfigError(OpenAIFilesError, AirflowFailException, ValueError):
    """The ``openai_files`` connection is missing or malformed; never retried.

    ``field`` and ``problem`` name the connection field at fault, when there is one.
    """

    field: str | None = None
    problem: str | None = None


class OpenAIFilesRequestError(OpenAIFilesError, AirflowFailException):
    """The service refused the request for good (400/401/403/404/422, quota spent); never retried."""


class OpenAIFilesNotFoundError(OpenAIFilesRequestError):
    """HTTP 404: the object the request named does not exist (deleted, expired, another project's, or a
    wrong id); never retried. The message names the object, in the words of its resource module."""


class OpenAIFilesTimeoutError(OpenAIFilesError):
    """The caller's deadline ran out before an answer (or before the wait for the next attempt ended).

    Raised by the async hook when its ``deadline`` passes; a trigger turns it into its ``timeout`` event.
    A plain :class:`OpenAIFilesError`, not a final one: the remote work may still end, and a task retry
    resumes waiting on it.
    """


class UploadCancelledError(OpenAIFilesError):
    """An Uploads API upload was cancelled while its parts were being sent (task killed)."""


def is_fatal_answer(status: int | None, error_type: str | None, code: str | None) -> bool:
    """True for an HTTP answer that no retry can change (see the module docstring)."""
    return status in FATAL_STATUSES or code in FATAL_CODES or error_type in FATAL_CODES


def settle(err: OpenAIFilesError) -> OpenAIFilesError:
    """Re-type a classified, non-retryable HTTP error as :class:`OpenAIFilesRequestError` when it is final."""
    if type(err) is OpenAIFilesError and is_fatal_answer(err.http_status, err.error_type, err.code):
        return err.reworded(err.message, cls=OpenAIFilesRequestError)
    return err


class RetryableError(OpenAIFilesError):
    """An HTTP answer the policy allows to retry; carries the server's wait hint."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)
