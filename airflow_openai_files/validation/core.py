"""Input checks, run before any request: ids, purposes, expiry, upload sources, durations, JSONL.

Used by the hook (every call checks its input), the operators (literal arguments are checked when
the DAG is parsed, templated ones when the task starts; the same functions either way) and the
emulator (a malformed ``fine-tune`` or ``batch`` file ends in status ``error`` with
``status_details`` naming the first bad line). Every refusal is an
:class:`~airflow_openai_files.exceptions.OpenAIFilesValidationError`, which fails the task at once.
Limits come from :mod:`airflow_openai_files.limits`. The JSONL reader streams line by line, so memory
stays bounded by the longest line (``max_line_bytes``) plus, for batch files, the set of
``custom_id`` values seen (at most ``max_batch_lines`` of them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from airflow_openai_files import limits

if TYPE_CHECKING:
    from airflow_openai_files.exceptions import OpenAIFilesValidationError
    from airflow_openai_files.transfer.sources import UploadSource

#: Purposes accepted on upload (kept under its old name for the emulator and existing callers).
PURPOSES = limits.UPLOAD_PURPOSES
FINE_TUNE_MIN_EXAMPLES = limits.FINE_TUNE_MIN_EXAMPLES
BATCH_MAX_LINES = limits.BATCH_MAX_LINES
DEFAULT_MAX_LINE_BYTES = limits.MAX_LINE_BYTES
CHAT_ROLES = limits.CHAT_ROLES

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_DURATION_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
MATCH_ALL_GLOBS = frozenset({"*", "**", "*.*"})


def _invalid(message: str) -> OpenAIFilesValidationError:
    # Imported on use: this module stays standard-library only at import time, so the emulator
    # (which imports the JSONL checks) neither loads Airflow nor prints its configuration banner.
    from airflow_openai_files.exceptions import OpenAIFilesValidationError

    return OpenAIFilesValidationError(message)


def is_templated(value: Any) -> bool:
    """A value Airflow still has to render (checked when the task starts instead of at parse time)."""
    return isinstance(value, str) and "{{" in value


def validate_id(value: Any, kind: str) -> str:
    """
    An id of any kind (``"file"``, ``"batch"``, ``"fine-tuning job"``...) that is safe to put in a URL path.

    Only the characters are checked (:data:`~airflow_openai_files.limits.SAFE_ID_RE`), not the prefix: an
    OpenAI-shaped service (Azure OpenAI, a proxy) may shape its ids differently, and the service itself
    answers a well-formed unknown id with a 404. What is refused is an id that could reach another
    endpoint once in the path (``/``, ``?``, ``#``, ``..``, whitespace). ``kind`` names the id in the message.
    """
    if not isinstance(value, str) or not value:
        raise _invalid(f"Invalid {kind} id {value!r}: must be a non-empty string")
    if not limits.SAFE_ID_RE.fullmatch(value) or ".." in value:
        raise _invalid(
            f"Invalid {kind} id {value!r}: only letters, digits, '-' and '_' are allowed "
            "(no '/', '?', '#', '..' or whitespace)"
        )
    return value


def validate_file_id(file_id: Any) -> str:
    """A file id that is safe to put in a URL path (:func:`validate_id` for files)."""
    return validate_id(file_id, "file")


def check_metadata(metadata: Any, *, reserved: int = 0) -> dict[str, str]:
    """
    A ``metadata`` argument by the service's rules (at most 16 pairs, keys of 1 to 64 characters, string
    values of at most 512), leaving ``reserved`` pairs free for the keys the provider adds itself (the
    request key that keeps a create from being sent blind twice).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _invalid(f"metadata must be a dict of strings, got {type(metadata).__name__}")
    room = limits.METADATA_MAX_PAIRS - reserved
    if len(metadata) > room:
        raise _invalid(
            f"metadata has {len(metadata)} pairs; at most {room} are free (the service keeps "
            f"{limits.METADATA_MAX_PAIRS}, {reserved} used by the provider to avoid duplicates)"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > limits.METADATA_KEY_MAX:
            raise _invalid(f"metadata key {key!r} must be a string of 1 to {limits.METADATA_KEY_MAX} characters")
        if not isinstance(value, str) or len(value) > limits.METADATA_VALUE_MAX:
            raise _invalid(f"metadata[{key!r}] must be a string of at most {limits.METADATA_VALUE_MAX} characters")
    return dict(metadata)


def check_purpose(purpose: Any, *, allowed: tuple[str, ...] = limits.UPLOAD_PURPOSES, what: str = "purpose") -> str:
    """An upload purpose (or, with ``allowed=limits.ALL_PURPOSES``, a list filter); errors name the valid ones."""
    if purpose not in allowed:
        hint = ""
        if isinstance(purpose, str) and purpose.strip().lower().replace("_", "-") in ("finetune", "fine-tune"):
            hint = " (did you mean 'fine-tune'?)"
        raise _invalid(f"Unknown {what} {purpose!r}{hint}: expected one of {', '.join(allowed)}")
    return str(purpose)


def check_expiry(seconds: Any) -> int | None:
    """``expires_after_seconds``: None, or a whole number of seconds within the service's range."""
    if isinstance(seconds, str):
        text = seconds.strip()
        if not text:
            return None
        try:
            seconds = int(text)
        except ValueError:
            raise _invalid(f"expires_after_seconds must be a whole number of seconds, got {seconds!r}") from None
    if seconds is None:
        return None
    low, high = limits.EXPIRES_MIN_SECONDS, limits.EXPIRES_MAX_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        raise _invalid(
            f"expires_after_seconds must be a whole number from {low} to {high} (1 hour to 30 days), got {seconds!r}"
        )
    return seconds


def parse_duration(value: Any) -> timedelta | None:
    """
    ``older_than`` as a timedelta: a timedelta, a number of seconds, or a string such as ``"7d"``,
    ``"12h"``, ``"1d12h"``, ``"90m"``, ``"2w"`` or ``"3600"``. Empty values mean "no filter"; a
    duration must be positive (``"0"`` would match every file).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            result = timedelta(seconds=float(text))
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(f"{n}{u}" for n, u in parts) != text:
                raise _invalid(
                    f"older_than {value!r} is not a duration: use e.g. '7d', '12h', '1d12h', '30m', seconds "
                    "or a timedelta"
                ) from None
            result = timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))
    else:
        raise _invalid(f"older_than must be a timedelta, seconds or a string like '7d'; got {type(value).__name__}")
    if result.total_seconds() <= 0:
        raise _invalid(f"older_than must be a positive duration, got {value!r}")
    return result


def timeout_seconds(value: Any) -> float:
    """A positive duration (seconds, a timedelta or ``"25h"``) in seconds: an operator's ``timeout``."""
    duration = parse_duration(value)
    if duration is None:
        raise _invalid(f"timeout must be a positive duration, got {value!r}")
    return duration.total_seconds()


def check_cleanup_filters(
    purpose: Any, filename_glob: Any, older_than: Any
) -> tuple[str | None, str | None, timedelta | None]:
    """The clean-up's filters, checked: known purpose, positive age, and not a filter set matching everything."""
    clean_purpose = (purpose or "").strip() or None if isinstance(purpose, str) or purpose is None else purpose
    if clean_purpose is not None:
        check_purpose(clean_purpose, allowed=limits.ALL_PURPOSES)
    glob = (filename_glob or "").strip() or None if isinstance(filename_glob, str) or filename_glob is None else None
    if filename_glob is not None and not isinstance(filename_glob, str):
        raise _invalid(f"filename_glob must be a string, got {type(filename_glob).__name__}")
    age = parse_duration(older_than)
    if clean_purpose is None and age is None and (glob is None or glob in MATCH_ALL_GLOBS):
        raise _invalid(
            "give at least one of purpose, filename_glob or older_than that narrows the match (every filter "
            f"is empty or matches everything: purpose={purpose!r}, filename_glob={filename_glob!r}, "
            f"older_than={older_than!r}); refusing: a clean-up without a filter would delete every file of the project"
        )
    return clean_purpose, glob, age


def check_source(upload: UploadSource, name: str, purpose: str, multipart: bool | None, validate: bool) -> None:
    """An upload source against the service's limits for ``purpose``, and its JSONL content when asked."""
    from airflow_openai_files.transfer.progress import human_size

    where = upload.description
    if upload.size == 0:
        raise _invalid(f"Upload source {where!r} is empty")
    if purpose in limits.JSONL_PURPOSES and not name.lower().endswith(".jsonl"):
        raise _invalid(f"{purpose} files must be .jsonl; {name!r} is not")
    if purpose == "batch" and upload.size > limits.BATCH_FILE_MAX_BYTES:
        raise _invalid(
            f"Batch input {where!r} is {human_size(upload.size)}; the Batch API accepts at most "
            f"{human_size(limits.BATCH_FILE_MAX_BYTES)}"
        )
    if multipart is False and upload.size > limits.FILE_MAX_BYTES:
        raise _invalid(
            f"Upload source {where!r} is {human_size(upload.size)}: POST /files accepts at most "
            f"{human_size(limits.FILE_MAX_BYTES)}; allow the Uploads API (multipart=None or True) for larger files"
        )
    if validate and purpose in limits.JSONL_PURPOSES:
        with upload.open() as stream:
            problem = check_jsonl(stream, purpose)
        if problem is not None:
            raise _invalid(f"{where}: invalid {purpose} JSONL: {describe(problem)}")


class JsonlProblem(NamedTuple):
    """The first problem found in a file: ``line`` is 1-based, or None for a whole-file problem."""

    line: int | None
    reason: str


def describe(problem: JsonlProblem) -> str:
    """``"line 7: not valid JSON: ..."``, or just the reason for a whole-file problem."""
    if problem.line is None:
        return problem.reason
    return f"line {problem.line}: {problem.reason}"


def _check_messages(messages: Any, where: str) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f"{where} must be a non-empty list"
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"{where}[{index}] must be an object"
        role = message.get("role")
        if not isinstance(role, str):
            return f"{where}[{index}] has no string 'role'"
        if role not in CHAT_ROLES:
            return f"{where}[{index}] has unknown role {role!r}"
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return f"{where}[{index}].content must be a string, a list or null"
    return None


def _fine_tune_format(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """Return (format name, problem) for one fine-tune example."""
    if "messages" in obj:
        problem = _check_messages(obj["messages"], "'messages'")
        if problem is None and "tools" in obj and not isinstance(obj["tools"], list):
            problem = "'tools' must be a list"
        if problem is None and "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
            problem = "'parallel_tool_calls' must be a boolean"
        return "chat", problem
    if "input" in obj or "preferred_output" in obj or "non_preferred_output" in obj:
        data_input = obj.get("input")
        if not isinstance(data_input, dict):
            return "preference", "'input' must be an object"
        problem = _check_messages(data_input.get("messages"), "'input.messages'")
        if problem is not None:
            return "preference", problem
        for key in ("preferred_output", "non_preferred_output"):
            problem = _check_messages(obj.get(key), repr(key))
            if problem is not None:
                return "preference", problem
        return "preference", None
    if "prompt" in obj or "completion" in obj:
        if not isinstance(obj.get("prompt"), str) or not isinstance(obj.get("completion"), str):
            return "prompt/completion", "'prompt' and 'completion' must both be strings"
        return "prompt/completion", None
    return None, (
        "not a fine-tuning example: expected 'messages', or 'input'/'preferred_output'/"
        "'non_preferred_output', or 'prompt'/'completion'"
    )


def _batch_problem(obj: dict[str, Any], seen_ids: dict[str, int]) -> str | None:
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "'custom_id' must be a non-empty string"
    if custom_id in seen_ids:
        return f"duplicate custom_id {custom_id!r} (first used on line {seen_ids[custom_id]})"
    if obj.get("method") != "POST":
        return f"'method' must be 'POST', got {obj.get('method')!r}"
    url = obj.get("url")
    # Azure OpenAI documents its batch lines without the prefix ("/chat/completions").
    if not isinstance(url, str) or not (url.startswith("/v1/") or "/v1" + url in limits.BATCH_ENDPOINTS):
        return f"'url' must be a string starting with '/v1/', got {url!r}"
    if not isinstance(obj.get("body"), dict):
        return "'body' must be an object"
    return None


def check_jsonl(
    stream: IO[bytes],
    purpose: str,
    *,
    max_batch_lines: int = BATCH_MAX_LINES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> JsonlProblem | None:
    """Return the first problem of a JSONL file for ``purpose``, or None when it is acceptable.

    Every non-blank line must be a UTF-8 JSON object. ``fine-tune`` files must hold at least ten
    examples of one format (chat, preference or legacy prompt/completion); ``batch`` files hold
    requests with a unique non-empty ``custom_id``, ``method`` ``POST``, a ``/v1/`` ``url`` and an
    object ``body``, at most ``max_batch_lines`` of them. Other purposes get the generic check only.
    A line longer than ``max_line_bytes`` is reported rather than read whole.
    """
    examples = 0
    first_format: tuple[str, int] | None = None
    seen_ids: dict[str, int] = {}
    line_no = 0
    for raw in _lines(stream, max_line_bytes):
        line_no += 1
        if len(raw) - raw.endswith(b"\n") > max_line_bytes:
            return JsonlProblem(line_no, f"line longer than {max_line_bytes} bytes")
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return JsonlProblem(line_no, f"not valid UTF-8 (byte {exc.start})")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return JsonlProblem(line_no, f"not valid JSON: {exc.msg}")
        if not isinstance(obj, dict):
            return JsonlProblem(line_no, f"expected a JSON object, got {type(obj).__name__}")
        examples += 1
        if purpose == "fine-tune":
            fmt, problem = _fine_tune_format(obj)
            if problem is not None:
                return JsonlProblem(line_no, problem)
            assert fmt is not None
            if first_format is None:
                first_format = (fmt, line_no)
            elif fmt != first_format[0]:
                return JsonlProblem(
                    line_no, f"{fmt} example in a file of {first_format[0]} examples (line {first_format[1]})"
                )
        elif purpose == "batch":
            if examples > max_batch_lines:
                return JsonlProblem(line_no, f"batch files may hold at most {max_batch_lines} requests")
            problem = _batch_problem(obj, seen_ids)
            if problem is not None:
                return JsonlProblem(line_no, problem)
            seen_ids[obj["custom_id"]] = line_no
    if purpose == "fine-tune" and examples < FINE_TUNE_MIN_EXAMPLES:
        return JsonlProblem(None, f"fine-tune files need at least {FINE_TUNE_MIN_EXAMPLES} examples, found {examples}")
    if purpose == "batch" and examples == 0:
        return JsonlProblem(None, "batch file holds no requests")
    return None


def _lines(stream: IO[bytes], max_line_bytes: int, block: int = 1024 * 1024) -> Iterator[bytes]:
    """
    The stream's lines, each with its newline; a line longer than ``max_line_bytes`` is cut at
    ``max_line_bytes + 1`` bytes (without a newline) and ends the iteration.

    Reads fixed-size blocks with ``read(n)`` rather than ``readline(limit)``: some file objects
    (s3fs) take no size argument to ``readline``, and a bare ``readline`` could pull a whole
    newline-free file into memory.
    """
    pending = b""
    while True:
        chunk = stream.read(block)
        if not chunk:
            if pending:
                yield pending[: max_line_bytes + 1] if len(pending) > max_line_bytes else pending
            return
        pending += chunk
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
        if len(pending) > max_line_bytes:
            yield pending[: max_line_bytes + 1]
            return
