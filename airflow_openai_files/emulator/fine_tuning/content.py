"""What happens to a job's files: the content check at ``validating_files`` (per method), and the
deterministic "training" that follows (steps, losses, tokens, the results CSV).

The content check reads the file line by line (memory bounded by the longest line). It reuses the
generic JSONL and example-shape checks of :mod:`airflow_openai_files.validation` and adds what the
service checks per method and that module does not (yet):

- supervised: chat examples only (``messages``), each with at least one ``assistant`` message;
- dpo: preference examples only (``input.messages``, ``preferred_output``,
  ``non_preferred_output``), each output holding an ``assistant`` message;
- reinforcement: ``messages`` (the prompt, not ending with an ``assistant`` answer) plus any
  reference fields the grader reads (``item.<field>``);
- a training file holds at least ten examples (``invalid_n_examples``).

Training is a pure function of the example count, the hyperparameters and the validation file:
losses fall smoothly from about 2.5 towards 0.1, so two runs of the same job agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from airflow_openai_files.limits import FINE_TUNE_MIN_EXAMPLES, MAX_LINE_BYTES
from airflow_openai_files.resources.fine_tuning import TRAINING_PURPOSE
from airflow_openai_files.validation import _fine_tune_format, _lines, check_jsonl

#: Header of the ``fine-tune-results`` file (OpenAI's fine-tuning guide, "Analyzing your fine-tuned model").
RESULTS_HEADER = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
RESULTS_FILENAME = "step_metrics.csv"
_FORMATS = {"supervised": "chat", "dpo": "preference", "reinforcement": "chat"}
_CHARS_PER_TOKEN = 4


class FileProblem(NamedTuple):
    code: str
    message: str
    param: str


class FileStats(NamedTuple):
    examples: int
    tokens: int


def _method_problem(obj: dict[str, Any], method: str) -> str | None:
    fmt, problem = _fine_tune_format(obj)
    if problem is not None:
        return problem
    wanted = _FORMATS[method]
    if fmt != wanted:
        return f"{method} fine-tuning needs {wanted} examples, got a {fmt} example"
    if method == "supervised":
        if not any(m.get("role") == "assistant" for m in obj["messages"]):
            return "'messages' must contain at least one message with role 'assistant'"
    elif method == "dpo":
        for key in ("preferred_output", "non_preferred_output"):
            if not any(m.get("role") == "assistant" for m in obj[key]):
                return f"'{key}' must contain a message with role 'assistant'"
    elif obj["messages"][-1].get("role") == "assistant":
        return "'messages' must end with the prompt, not an 'assistant' answer (the grader scores the model's answer)"
    return None


def _text_size(obj: Any) -> int:
    """Characters of text in an example (string values anywhere in it), for the token estimate."""
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, dict):
        return sum(_text_size(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_text_size(v) for v in obj)
    return 0


def check_file(path: Path, method: str, param: str) -> FileProblem | FileStats:
    """The first problem of a training (``param="training_file"``) or validation file, or its stats.

    The generic check finds the first line that is not a JSON object of a known example shape;
    the lines before it are then checked for ``method`` and counted. Messages follow the one the
    service is reported to give ("The job failed due to a file format error in the training file.
    Invalid file format. Example 6174 message contains ..."), with the line added.
    """
    which = "training" if param == "training_file" else "validation"

    def bad(reason: str) -> FileProblem:
        message = f"The job failed due to a file format error in the {which} file. Invalid file format. {reason}"
        return FileProblem(f"invalid_{which}_file", message, param)

    try:
        with open(path, "rb") as stream:
            generic = check_jsonl(stream, TRAINING_PURPOSE)
            stop = generic.line if generic is not None and generic.line is not None else None
            stream.seek(0)
            examples, chars = 0, 0
            for line_no, raw in enumerate(_lines(stream, MAX_LINE_BYTES), start=1):
                if stop is not None and line_no >= stop:
                    break
                if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                if not raw.strip():
                    continue
                obj = json.loads(raw.decode("utf-8"))
                reason = _method_problem(obj, method)
                if reason is not None:
                    return bad(f"Example {examples + 1} (line {line_no}): {reason}.")
                examples += 1
                chars += _text_size(obj)
    except FileNotFoundError:
        return bad("The file was deleted before the job read it.")
    if stop is not None:
        assert generic is not None
        return bad(f"Example {examples + 1} (line {stop}): {generic.reason}.")
    if param == "training_file" and examples < FINE_TUNE_MIN_EXAMPLES:
        return FileProblem(
            "invalid_n_examples",
            f"Training file has {examples} example(s), but must have at least {FINE_TUNE_MIN_EXAMPLES} examples",
            param,
        )
    if examples == 0:
        return bad("The file holds no examples.")
    return FileStats(examples, max(1, math.ceil(chars / _CHARS_PER_TOKEN)))


class Plan(NamedTuple):
    """What a job trains: resolved hyperparameters, steps and billable tokens."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    total_steps: int
    trained_tokens: int
    has_validation: bool


def resolve_plan(hyperparameters: dict[str, Any], train: FileStats, has_validation: bool) -> Plan:
    """``"auto"`` resolved the way the service describes it: 3 epochs, a batch of about 0.2% of the
    examples (at least 1, at most 256), a learning-rate multiplier of 2 for small batches."""
    n_epochs = hyperparameters.get("n_epochs", "auto")
    n_epochs = 3 if n_epochs == "auto" else int(n_epochs)
    batch_size = hyperparameters.get("batch_size", "auto")
    batch_size = max(1, min(256, round(train.examples * 0.002))) if batch_size == "auto" else int(batch_size)
    lr = hyperparameters.get("learning_rate_multiplier", "auto")
    lr = (2.0 if batch_size < 8 else 1.0) if lr == "auto" else float(lr)
    steps = math.ceil(train.examples / batch_size) * n_epochs
    return Plan(n_epochs, batch_size, lr, steps, train.tokens * n_epochs, has_validation)


#: Loss at which the reported accuracy would reach 0: above every loss the curve below gives (training
#: starts below ``0.1 + 2.4``, validation below ``2.5 * 1.08 + 0.02 = 2.72``), so accuracies stay in (0, 1).
_ZERO_ACCURACY_LOSS = 3.0


def _accuracy(loss: float) -> float:
    """A mean token accuracy for a loss: falls linearly from 1 at loss 0, always a fraction in [0, 1].

    The service reports accuracies as fractions; a negative one (as ``1 - loss / 2.6`` gave for the
    first validation steps, where the validation loss is above 2.6) is never something it sends.
    """
    return round(min(1.0, max(0.0, 1 - loss / _ZERO_ACCURACY_LOSS)), 4)


def step_metrics(plan: Plan, step: int) -> dict[str, float]:
    """The metrics of one step (1-based): losses falling smoothly, accuracies rising."""
    progress = step / plan.total_steps
    train_loss = round(0.1 + 2.4 * math.exp(-3.0 * progress), 4)
    metrics = {"step": step, "train_loss": train_loss, "train_mean_token_accuracy": _accuracy(train_loss)}
    if plan.has_validation:
        valid_loss = round(train_loss * 1.08 + 0.02, 4)
        metrics["valid_loss"] = valid_loss
        metrics["valid_mean_token_accuracy"] = _accuracy(valid_loss)
    return metrics


def step_message(metrics: dict[str, float], total: int) -> str:
    """``"Step 471/890: training loss=1.55, validation loss=2.50"`` (the service's event wording)."""
    message = f"Step {int(metrics['step'])}/{total}: training loss={metrics['train_loss']:.2f}"
    if "valid_loss" in metrics:
        message += f", validation loss={metrics['valid_loss']:.2f}"
    return message


def _csv_rows(plan: Plan) -> Iterator[str]:
    yield ",".join(RESULTS_HEADER)
    for step in range(1, plan.total_steps + 1):
        m = step_metrics(plan, step)
        valid = (m["valid_loss"], m["valid_mean_token_accuracy"]) if plan.has_validation else ("", "")
        yield f"{step},{m['train_loss']},{m['train_mean_token_accuracy']},{valid[0]},{valid[1]}"


def results_csv(plan: Plan) -> bytes:
    return "".join(row + "\n" for row in _csv_rows(plan)).encode()
