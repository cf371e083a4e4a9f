"""OpenAIFileSensor: what only files have (target ``uploaded``, a templated target, processing in real time).

The plumbing every sensor shares (poke, reschedule, defer, resume, soft_fail, timeouts, ids in every
form, start_from_trigger) is tested once, over every resource, in ``test_base_sensor.py``.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.hooks import OpenAIFilesHook
from airflow_openai_files.sensors import OpenAIFileSensor
from tests.support.connections import use_emulator
from tests.support.emulators import FILES_STAY_UPLOADED
from tests.support.task_helpers import fine_tune_lines, make_context


def put(body: bytes | None = None, purpose: str = "fine-tune") -> dict[str, Any]:
    return OpenAIFilesHook().upload_file(
        io.BytesIO(body if body is not None else fine_tune_lines()), purpose, filename="train.jsonl", validate=False
    )


def sensor(file_id: Any, **kwargs: Any) -> OpenAIFileSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return OpenAIFileSensor(task_id="wait", file_id=file_id, **kwargs)


def test_poke_mode_waits_until_processed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_openai_files.emulator import Emulator

    # 2 s: long enough that a loaded machine still polls before the flip, short enough for the suite.
    with Emulator(data_dir=tmp_path / "emu", processing_delay=2.0) as emulator:
        use_emulator(monkeypatch, emulator)
        created = put()
        assert created["status"] == "uploaded"
        result = sensor(created, deferrable=False).execute(make_context())  # a File dict works as file_id
        assert result["status"] == "processed"
        polls = [path for method, path, _ in emulator.request_log() if method == "GET"]
        assert len(polls) >= 2


@FILES_STAY_UPLOADED
def test_target_uploaded_is_reached_at_once(openai_files_connection: Any) -> None:
    created = put()
    assert sensor(created["id"], target_status="uploaded").execute(make_context())["status"] == "uploaded"


def test_invalid_target_status_fails_when_the_dag_is_parsed() -> None:
    with pytest.raises(AirflowFailException, match="target_status must be one or more of uploaded, processed"):
        sensor("file-abc", target_status="done")


def test_templated_target_status(openai_files_connection: Any) -> None:
    created = put()
    op = sensor("{{ params.id }}", target_status="{{ params.status }}")
    context = make_context(params={"id": created["id"], "status": "uploaded"})
    op.render_template_fields(context)
    assert op.target_status == "uploaded"
    assert op.execute(context)["id"] == created["id"]
    op.target_status = "done"  # a rendered value the checks refuse: the task fails, it does not wait
    with pytest.raises(AirflowFailException, match="target_status"):
        op.execute(context)
