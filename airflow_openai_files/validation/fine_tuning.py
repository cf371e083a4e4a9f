"""Fine-tuning files, per method (supervised, DPO, reinforcement), checked streamed before any request."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from airflow_openai_files import limits
from airflow_openai_files.validation.core import (
    DEFAULT_MAX_LINE_BYTES,
    _fine_tune_format,
    _invalid,
    _lines,
)

if TYPE_CHECKING:
    pass


# --- Fine-tuning files, per method ----------------------------------------------------------------
#
# What the service documents for each ``method.type`` (OpenAI's fine-tuning guides and the API
# reference's per-line input types; Azure OpenAI documents the same shapes):
#
# * ``supervised``: chat examples, ``{"messages": [...]}`` (optional ``tools``,
#   ``parallel_tool_calls``), each with at least one ``assistant`` message (what the model learns).
# * ``dpo``: preference pairs, ``{"input": {"messages": [...]}, "preferred_output": [...],
#   "non_preferred_output": [...]}``; each output is a list of messages holding an ``assistant`` one.
# * ``reinforcement``: ``{"messages": [...]}`` with the prompt the model answers (so it does not end
#   with an ``assistant`` answer; the grader scores the model's own), input content text or images
#   only, plus any other fields the grader reads as ``{{ item.<field> }}``; ``messages`` and ``tools``
#   are the only reserved keys.
#
# A training file needs at least ten examples; a validation file at least one.

#: The example shape each method trains on (see ``_fine_tune_format``).
FINE_TUNE_FORMATS = {"supervised": "chat", "dpo": "preference", "reinforcement": "chat"}
#: Content part types a reinforcement prompt may carry (audio and files are not supported).
RFT_CONTENT_PARTS = frozenset({"text", "image_url", "input_text", "input_image"})


def check_fine_tuning_method(method: Any) -> str:
    """``method`` as a type name: ``"supervised"``, ``"dpo"``, ``"reinforcement"`` or a ``{"type": ...}`` dict."""
    kind = method.get("type") if isinstance(method, dict) else method
    if kind is None:
        return "supervised"
    if kind not in limits.FINE_TUNING_METHODS:
        raise _invalid(f"Unknown fine-tuning method {kind!r}: expected one of {', '.join(limits.FINE_TUNING_METHODS)}")
    return str(kind)


def _method_rule(obj: dict[str, Any], method: str) -> str | None:
    """The per-method rule an example (already of a known format) breaks, or None."""
    fmt, problem = _fine_tune_format(obj)
    if problem is not None:
        return problem
    wanted = FINE_TUNE_FORMATS[method]
    if fmt != wanted:
        return f"{method} fine-tuning needs {wanted} examples, got a {fmt} example"
    if method == "supervised":
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in obj["messages"]):
            return "'messages' must contain at least one message with role 'assistant' (what the model learns)"
    elif method == "dpo":
        for key in ("preferred_output", "non_preferred_output"):
            if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in obj[key]):
                return f"{key!r} must contain a message with role 'assistant'"
    else:
        messages = obj["messages"]
        if messages[-1].get("role") == "assistant":
            return "'messages' must end with the prompt, not an 'assistant' answer (the grader scores the model's own)"
        for index, message in enumerate(messages):
            content = message.get("content")
            if isinstance(content, list):
                for part in content:
                    kind = part.get("type") if isinstance(part, dict) else None
                    if kind not in RFT_CONTENT_PARTS:
                        return (
                            f"'messages'[{index}] has content of type {kind!r}: reinforcement examples take "
                            "text and images only"
                        )
    return None


def check_fine_tune_file(
    stream: IO[bytes],
    method: Any = "supervised",
    *,
    name: str = "<stream>",
    role: str = "training",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> None:
    """
    Check a fine-tuning JSONL file for ``method``, streaming; raise at the first problem.

    The error names the file, the line and the rule (``train.jsonl: line 7: dpo fine-tuning needs
    preference examples, got a chat example``). ``role`` is ``"training"`` (at least ten examples) or
    ``"validation"`` (at least one). Memory stays bounded by the longest line.

    :raises OpenAIFilesValidationError: the file breaks a rule; it never reaches the service.
    """
    kind = check_fine_tuning_method(method)
    if role not in ("training", "validation"):
        raise ValueError(f"role must be 'training' or 'validation', got {role!r}")
    where = f"{name}: invalid {role} file for {kind} fine-tuning"
    examples = 0
    for line_no, raw in enumerate(_lines(stream, max_line_bytes), start=1):
        if len(raw) - raw.endswith(b"\n") > max_line_bytes:
            raise _invalid(f"{where}: line {line_no}: line longer than {max_line_bytes} bytes")
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _invalid(f"{where}: line {line_no}: not valid UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise _invalid(f"{where}: line {line_no}: not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise _invalid(f"{where}: line {line_no}: expected a JSON object, got {type(obj).__name__}")
        problem = _method_rule(obj, kind)
        if problem is not None:
            raise _invalid(f"{where}: line {line_no}: {problem}")
        examples += 1
    needed = limits.FINE_TUNE_MIN_EXAMPLES if role == "training" else 1
    if examples < needed:
        raise _invalid(f"{where}: needs at least {needed} example(s), found {examples}")
