"""The Fine-tuning jobs API methods (``/fine_tuning/jobs``): :class:`FineTuningAPIMixin` (sync hook) and
:class:`AsyncFineTuningAPIMixin` (triggers).

Follows the resource-mixin contract of :mod:`airflow_openai_files.hooks.files`: everything goes
through ``self._transport`` (``self.request_json`` for the async mixin) and comes back as the
service's own JSON objects (plain dicts).

Never created twice: the API takes no idempotency key, so :meth:`create_fine_tuning_job` puts a
random token in the job's ``metadata`` (:data:`~airflow_openai_files.resume.REQUEST_KEY_METADATA`);
when an attempt fails in a way that may have reached the server (the connection dropped after the
body was sent, a read timeout, a 5xx), the next attempt first lists the jobs carrying that token and
returns the one it finds instead of sending the request again.

OpenAI's self-serve cutoff: from :data:`~airflow_openai_files.limits.OPENAI_FINE_TUNING_CUTOFF` no
one can create new jobs on api.openai.com (earlier for organisations without recent fine-tuning).
The service's refusal is turned into a final (never retried) error that says so and where to go.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_openai_files import limits
from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesRequestError, OpenAIFilesValidationError
from airflow_openai_files.hooks.base import AsyncAPIMixin
from airflow_openai_files.resources import fine_tuning
from airflow_openai_files.resume import REQUEST_KEY_METADATA
from airflow_openai_files.validation import check_fine_tuning_method, check_metadata, validate_file_id, validate_id

if TYPE_CHECKING:
    from airflow_openai_files.client.settings import ClientSettings
    from airflow_openai_files.client.transport import Transport

#: ``error.code`` values a service answers when it no longer creates fine-tuning jobs.
CUTOFF_CODES = frozenset({"fine_tuning_unavailable", "fine_tuning_disabled", "fine_tuning_not_available"})
_CUTOFF_WORDS = re.compile(
    r"(no longer|not (?:be )?available|unavailable|discontinu|wind(?:ing)? down|self-serve|deprecat|sunset)", re.I
)
EVENTS_PAGE_MAX = 100


def job_path(job_id: str, suffix: str = "") -> str:
    """``fine_tuning/jobs/{job_id}{suffix}`` once the id is checked (shared by the sync and async mixins)."""
    return f"fine_tuning/jobs/{validate_id(job_id, fine_tuning.KIND)}{suffix}"


def events_params(after: str | None, limit: int | None) -> dict[str, Any]:
    """The query of one page of a job's events (``limit`` from 1 to :data:`EVENTS_PAGE_MAX`)."""
    params: dict[str, Any] = {}
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= EVENTS_PAGE_MAX:
            raise OpenAIFilesValidationError(f"page_size must be from 1 to {EVENTS_PAGE_MAX}, got {limit!r}")
        params["limit"] = limit
    if after is not None:
        params["after"] = after
    return params


def cutoff_message() -> str:
    """Why job creation is refused on OpenAI, and what to use instead."""
    cutoff = limits.OPENAI_FINE_TUNING_CUTOFF
    return (
        f"OpenAI stopped new self-serve fine-tuning jobs on {cutoff} (organisations that never fine-tuned were "
        "refused from 2026-05-07, those without fine-tuned-model inference in the last 60 days from 2026-07-02); "
        "existing fine-tuned models keep serving until their base models retire. Use Azure OpenAI (flavor=azure) "
        "or another OpenAI-shaped service that still runs fine-tuning jobs"
    )


def is_cutoff_refusal(err: OpenAIFilesError, *, base_url: str = "", now: float | None = None) -> bool:
    """True for a job-creation refusal that means "this service no longer fine-tunes"."""
    if err.http_status not in (400, 403, 404, 410):
        return False
    if err.code in CUTOFF_CODES or err.error_type in CUTOFF_CODES:
        return True
    text = err.message.lower()
    if ("fine-tun" in text or "fine tun" in text or "fine_tun" in text) and _CUTOFF_WORDS.search(text):
        return True
    # api.openai.com after the cutoff: a permission refusal on create can only mean the cutoff.
    if "api.openai.com" in base_url and err.http_status == 403:
        cutoff = datetime.strptime(limits.OPENAI_FINE_TUNING_CUTOFF, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        return (now if now is not None else time.time()) >= cutoff.timestamp()
    return False


def _method_body(method: Any, hyperparameters: Any) -> dict[str, Any] | None:
    """``method`` as the API takes it; a bare type name becomes ``{"type": name}``."""
    if method is None:
        return None
    kind = check_fine_tuning_method(method)
    body = dict(method) if isinstance(method, dict) else {"type": kind}
    if hyperparameters is not None and kind != "supervised":
        given = body.get(kind)
        settings: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        settings.setdefault("hyperparameters", hyperparameters)
        body[kind] = settings
    return body


class FineTuningAPIMixin:
    """``create_fine_tuning_job``, ``get_fine_tuning_job``, ``cancel_fine_tuning_job``, listings."""

    if TYPE_CHECKING:
        _transport: Transport
        settings: ClientSettings
        log: Any

    def create_fine_tuning_job(
        self,
        training_file: str,
        model: str,
        *,
        validation_file: str | None = None,
        method: Any = None,
        hyperparameters: dict[str, Any] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """
        Create a fine-tuning job and return it; never sends the creation blind twice.

        :param training_file: the ``file-...`` id of a ``fine-tune`` file.
        :param model: the base model (``gpt-4.1-mini-2025-04-14``; on Azure, the model name).
        :param validation_file: an optional ``file-...`` id.
        :param method: ``"supervised"`` / ``"dpo"`` / ``"reinforcement"`` or the API's ``{"type": ..., ...}``.
        :param hyperparameters: ``n_epochs``, ``batch_size``, ``learning_rate_multiplier`` (``"auto"`` or a
            number); top-level for supervised jobs, moved under ``method.<type>`` for the others.
        :param suffix: up to 64 characters put in the fine-tuned model's name.
        :param seed: for reproducible jobs.
        :param metadata: up to 15 string pairs (one more is used for the request key).
        """
        validate_file_id(training_file)
        if validation_file is not None:
            validate_file_id(validation_file)
        if not isinstance(model, str) or not model.strip():
            raise OpenAIFilesValidationError(f"model must be a non-empty string, got {model!r}")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > limits.FINE_TUNING_SUFFIX_MAX):
            raise OpenAIFilesValidationError(
                f"suffix must be a string of at most {limits.FINE_TUNING_SUFFIX_MAX} characters, got {suffix!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise OpenAIFilesValidationError(f"seed must be an integer, got {seed!r}")
        tags = check_metadata(metadata, reserved=1)
        token = secrets.token_hex(16)
        tags[REQUEST_KEY_METADATA] = token
        body: dict[str, Any] = {"model": model, "training_file": training_file, "metadata": tags}
        method_body = _method_body(method, hyperparameters)
        if method_body is not None:
            body["method"] = method_body
        if hyperparameters is not None and (method_body is None or method_body["type"] == "supervised"):
            body["hyperparameters"] = hyperparameters
        for name, value in (("validation_file", validation_file), ("suffix", suffix), ("seed", seed)):
            if value is not None:
                body[name] = value
        return self._create_once(body, token)

    def _create_once(self, body: dict[str, Any], token: str) -> dict[str, Any]:
        from airflow_openai_files.client.transport import may_have_reached_server

        what = f"Creating fine-tuning job on {body['model']} from {body['training_file']}"
        transport = self._transport
        failures: list[BaseException] = []

        def attempt() -> dict[str, Any]:
            if any(may_have_reached_server(failure) for failure in failures):
                found = self.find_fine_tuning_job({REQUEST_KEY_METADATA: token})
                if found is not None:
                    self.log.warning(
                        "Fine-tuning job %s was created by an earlier attempt whose answer was lost; using it",
                        found["id"],
                    )
                    return found
            try:
                response = transport.send("POST", "fine_tuning/jobs", json=body, what=what)
            except BaseException as err:
                failures.append(err)
                raise
            return transport.payload(response, what)

        try:
            job = transport.call(what, attempt)
        except OpenAIFilesError as err:
            if is_cutoff_refusal(err, base_url=self.settings.base_url):
                raise err.reworded(
                    f"{what} refused: {cutoff_message()}. The service said: {err.message}", cls=OpenAIFilesRequestError
                ) from None
            raise
        self.log.info(
            "Created fine-tuning job %s (%s, model %s, training file %s%s)",
            job.get("id"),
            job.get("status"),
            job.get("model"),
            job.get("training_file"),
            f", validation file {job['validation_file']}" if job.get("validation_file") else "",
        )
        return job

    def get_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Retrieve a job (``GET /fine_tuning/jobs/{job_id}``)."""
        return self._transport.json("GET", job_path(job_id), what=f"Retrieving {job_id}")

    def cancel_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a job; a job that already ended is returned as it is (cancel is then a no-op)."""
        try:
            job = self._transport.json("POST", job_path(job_id, "/cancel"), what=f"Cancelling {job_id}")
        except OpenAIFilesError as err:
            if err.http_status != 400:
                raise
            job = self.get_fine_tuning_job(job_id)
            if job.get("status") not in fine_tuning.TERMINAL:
                raise
            self.log.info("Fine-tuning job %s had already ended (%s); nothing to cancel", job_id, job.get("status"))
            return job
        self.log.info("Cancelled fine-tuning job %s (status %s)", job_id, job.get("status"))
        return job

    def pause_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Pause a running job (``POST .../pause``); it keeps its progress until resumed."""
        return self._transport.json("POST", job_path(job_id, "/pause"), what=f"Pausing {job_id}")

    def resume_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Resume a paused job (``POST .../resume``)."""
        return self._transport.json("POST", job_path(job_id, "/resume"), what=f"Resuming {job_id}")

    def list_fine_tuning_jobs(
        self, *, page_size: int | None = None, metadata: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every job, newest first, across all pages.

        :param page_size: jobs per request (the API's default, 20, when None).
        :param metadata: only jobs whose metadata has every one of these pairs (``metadata[k]=v``).
        """
        params: dict[str, Any] = {}
        if page_size is not None:
            if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
                raise OpenAIFilesValidationError(f"page_size must be a positive integer, got {page_size!r}")
            params["limit"] = page_size
        for key, value in check_metadata(metadata).items():
            params[f"metadata[{key}]"] = value
        return self._transport.iter_pages("fine_tuning/jobs", params, "Listing fine-tuning jobs")

    def find_fine_tuning_job(
        self, metadata: dict[str, str], *, since: float | None = None, scan: int = 200
    ) -> dict[str, Any] | None:
        """The newest job whose metadata has every pair of ``metadata`` (checked here too: a service
        that ignores the filter must not hand back someone else's job); None after ``scan`` jobs.

        :param since: unix time (local clock); stop at jobs created before it, less
            :data:`~airflow_openai_files.limits.CLOCK_SKEW_SECONDS`.
        """
        horizon = None if since is None else since - limits.CLOCK_SKEW_SECONDS
        for index, job in enumerate(self.list_fine_tuning_jobs(page_size=100, metadata=metadata)):
            if horizon is not None and int(job.get("created_at") or 0) < horizon:
                return None
            stored = job.get("metadata") or {}
            if all(stored.get(key) == value for key, value in metadata.items()):
                return job
            if index + 1 >= scan:
                break
        return None

    def list_fine_tuning_events(self, job_id: str, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield a job's events, newest first, across all pages (``GET /fine_tuning/jobs/{id}/events``)."""
        path = job_path(job_id, "/events")
        return self._transport.iter_pages(path, events_params(None, page_size), f"Listing events of {job_id}")

    def fine_tuning_results(
        self, file_id: str, destination: Any = None, *, overwrite: bool = False
    ) -> tuple[str | None, dict[str, Any]]:
        """
        Stream a ``fine-tune-results`` file: optionally land it (plain CSV, base64 decoded) at
        ``destination``, and return ``(destination or None, last row as a dict)``.

        The destination appears only once complete (written beside it, then moved into place).
        """
        from airflow_openai_files.results import ResultsDecoder
        from airflow_openai_files.transfer.destinations import Destination
        from airflow_openai_files.transfer.progress import Progress

        validate_file_id(file_id)
        target = Destination(destination, overwrite=overwrite) if destination is not None else None
        if target is not None:
            target.check()
        transport = self._transport
        what = f"Reading results file {file_id}"
        size = int(transport.json("GET", f"files/{file_id}", what=f"Retrieving {file_id}").get("bytes") or 0)
        progress = Progress(self.log, what, size)

        def attempt() -> ResultsDecoder:
            decoder = ResultsDecoder()
            response = transport.send("GET", f"files/{file_id}/content", what=what, stream=True)
            if target is None:
                with response:
                    transport.read_body(response, decoder.feed, progress)
                decoder.finish()
                return decoder
            with response, target.open_temp() as handle:
                transport.read_body(response, lambda chunk: handle.write(decoder.feed(chunk)), progress)
                handle.write(decoder.finish())
            return decoder

        try:
            decoder = transport.call(what, attempt)
            if target is not None:
                target.commit()
        except ValueError as err:
            raise OpenAIFilesError(f"{what}: {err}") from None
        finally:
            if target is not None:
                target.discard()
        metrics = decoder.metrics()
        self.log.info(
            "Results file %s: %d step row(s)%s%s; last row %s",
            file_id,
            decoder.rows,
            " (base64-encoded by the service, decoded)" if decoder.encoding == "base64" else "",
            f", landed at {target.display}" if target is not None else "",
            metrics,
        )
        return (target.display if target is not None else None), metrics


class AsyncFineTuningAPIMixin(AsyncAPIMixin):
    """``get_fine_tuning_job``, one page of events and ``cancel_fine_tuning_job`` for triggers."""

    async def get_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Retrieve a fine-tuning job (``GET /fine_tuning/jobs/{job_id}``)."""
        return await self.request_json("GET", job_path(job_id), what=f"Retrieving {job_id}")

    async def list_fine_tuning_events_page(
        self, job_id: str, *, after: str | None = None, limit: int = EVENTS_PAGE_MAX
    ) -> dict[str, Any]:
        """One page of a job's events, newest first: ``{"data": [...], "has_more": bool}``."""
        return await self.request_json(
            "GET", job_path(job_id, "/events"), what=f"Listing events of {job_id}", params=events_params(after, limit)
        )

    async def cancel_fine_tuning_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a fine-tuning job (``POST /fine_tuning/jobs/{job_id}/cancel``)."""
        return await self.request_json("POST", job_path(job_id, "/cancel"), what=f"Cancelling {job_id}")
