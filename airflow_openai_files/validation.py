"""Streaming checks of JSONL training and batch files, as the OpenAI Files API applies them.

Shared by the local emulator (a malformed ``fine-tune`` or ``batch`` file ends in status ``error``
with ``status_details`` naming the first bad line) and by the upload operator (a check before any
byte is sent). Pure standard library; reads the stream line by line, so memory stays bounded by
the longest line (``max_line_bytes``) plus, for batch files, the set of ``custom_id`` values seen
(at most ``max_batch_lines`` of them).
"""

from __future__ import annotations

import json
from typing import IO, Any, NamedTuple

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")

FINE_TUNE_MIN_EXAMPLES = 10
BATCH_MAX_LINES = 50_000
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


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
    if not isinstance(url, str) or not url.startswith("/v1/"):
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
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            break
        line_no += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
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


# --- added by core-async (issue 10): the trigger must not import hooks.py (requests, tenacity, urllib3) for
# this. COORDINATOR: core-sync moves validate_file_id here too; keep one copy (this one) and let hooks import it.
def validate_file_id(file_id: Any, *, kind: str = "file") -> str:
    """Refuse ids that could reach another endpoint once put in a URL path."""
    from airflow_openai_files.exceptions import OpenAIFilesValidationError
    from airflow_openai_files.limits import SAFE_ID_RE

    if not isinstance(file_id, str) or not file_id:
        raise OpenAIFilesValidationError(f"Invalid {kind} id {file_id!r}: must be a non-empty string")
    if not SAFE_ID_RE.fullmatch(file_id) or ".." in file_id:
        raise OpenAIFilesValidationError(
            f"Invalid {kind} id {file_id!r}: only letters, digits, '-' and '_' are allowed "
            "(no '/', '?', '#', '..' or whitespace)"
        )
    return file_id
