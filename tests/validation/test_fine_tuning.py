"""Per-method checks of fine-tuning JSONL (``check_fine_tune_file``): streamed, errors name file, line, rule."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.validation import check_fine_tune_file, check_fine_tuning_method


def chat(i: int = 0, last: str = "assistant") -> dict[str, Any]:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Q{i}?"}]
    if last == "assistant":
        messages.append({"role": "assistant", "content": f"A{i}."})
    return {"messages": messages}


def dpo(i: int = 0) -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "user", "content": f"Q{i}?"}]},
        "preferred_output": [{"role": "assistant", "content": "Good."}],
        "non_preferred_output": [{"role": "assistant", "content": "Bad."}],
    }


def rft(i: int = 0) -> dict[str, Any]:
    return {**chat(i, last="user"), "reference_answer": f"A{i}", "tools": []}


def jsonl(*examples: Any) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(e).encode() + b"\n" for e in examples))


def refused(stream: io.BytesIO, method: Any, **kwargs: Any) -> str:
    with pytest.raises(OpenAIFilesValidationError) as info:
        check_fine_tune_file(stream, method, name="train.jsonl", **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    ("method", "build"),
    [("supervised", chat), ("dpo", dpo), ("reinforcement", rft), ({"type": "dpo", "dpo": {}}, dpo), (None, chat)],
)
def test_valid_files_pass(method: Any, build: Any) -> None:
    check_fine_tune_file(jsonl(*(build(i) for i in range(10))), method, name="train.jsonl")


def test_supervised_needs_an_assistant_message() -> None:
    examples = [chat(i) for i in range(10)]
    examples[6] = chat(6, last="user")
    message = refused(jsonl(*examples), "supervised")
    assert "train.jsonl" in message and "line 7" in message and "role 'assistant'" in message


def test_dpo_refuses_chat_examples_with_the_line() -> None:
    message = refused(jsonl(*(dpo(i) for i in range(3)), chat(), *(dpo(i) for i in range(8))), "dpo")
    assert "line 4" in message and "dpo fine-tuning needs preference examples, got a chat example" in message


def test_dpo_outputs_need_an_assistant_message() -> None:
    bad = dpo()
    bad["non_preferred_output"] = [{"role": "user", "content": "?"}]
    message = refused(jsonl(bad, *(dpo(i) for i in range(10))), "dpo")
    assert "line 1" in message and "'non_preferred_output' must contain a message with role 'assistant'" in message


def test_reinforcement_refuses_an_answer_as_last_message() -> None:
    message = refused(jsonl(*(rft(i) for i in range(5)), chat(), *(rft(i) for i in range(5))), "reinforcement")
    assert "line 6" in message and "must end with the prompt" in message


def test_reinforcement_refuses_audio_content() -> None:
    bad = rft()
    bad["messages"][-1]["content"] = [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]
    message = refused(jsonl(bad, *(rft(i) for i in range(10))), "reinforcement")
    assert "line 1" in message and "text and images only" in message


def test_reinforcement_keeps_grader_fields() -> None:
    examples = [{**rft(i), "expected": {"label": i}} for i in range(10)]
    check_fine_tune_file(jsonl(*examples), "reinforcement")


def test_training_file_needs_ten_examples_validation_one() -> None:
    assert "needs at least 10 example(s), found 9" in refused(jsonl(*(chat(i) for i in range(9))), "supervised")
    check_fine_tune_file(jsonl(chat()), "supervised", role="validation")
    assert "invalid validation file" in refused(jsonl(), "supervised", role="validation")


def test_bad_json_and_non_objects_name_the_line() -> None:
    body = b"".join(json.dumps(chat(i)).encode() + b"\n" for i in range(4)) + b"{not json\n"
    assert "line 5: not valid JSON" in refused(io.BytesIO(body), "supervised")
    assert "line 1: expected a JSON object, got list" in refused(io.BytesIO(b"[1]\n"), "supervised")


def test_streams_with_bounded_lines() -> None:
    long = b'{"messages": "' + b"x" * 2048 + b'"}\n'
    assert "line 1: line longer than 1024 bytes" in refused(io.BytesIO(long), "supervised", max_line_bytes=1024)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(OpenAIFilesValidationError, match="Unknown fine-tuning method 'sft'"):
        check_fine_tuning_method("sft")
    assert check_fine_tuning_method({"type": "reinforcement"}) == "reinforcement"
