"""``ids_from`` / ``id_from``: the one parser of id-taking arguments (issue 12)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from airflow_openai_files._compat import AirflowFailException
from airflow_openai_files.operators.base import id_from, ids_from

FILE = {"id": "file-a", "object": "file", "bytes": 3, "filename": "a.txt", "purpose": "user_data"}


class LazySequence(Sequence[Any]):
    """Shaped like Airflow's LazyXComSequence / _MapResult: a Sequence that is not a list."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("file-a", ["file-a"]),
        (FILE, ["file-a"]),
        (str(FILE), ["file-a"]),  # Jinja's rendering of a dict
        ('{"id": "file-a"}', ["file-a"]),  # JSON
        (["file-a", {"id": "file-b"}, "file-a"], ["file-a", "file-b"]),
        ("['file-a', 'file-b']", ["file-a", "file-b"]),
        (str([FILE, {**FILE, "id": "file-b"}]), ["file-a", "file-b"]),
        (LazySequence([FILE, {**FILE, "id": "file-b"}]), ["file-a", "file-b"]),
        ((item for item in ["file-a", "file-c"]), ["file-a", "file-c"]),
        (("file-a",), ["file-a"]),
    ],
)
def test_every_form_gives_the_ids(value: Any, expected: list[str]) -> None:
    assert ids_from(value) == expected


@pytest.mark.parametrize("value", ["", "   ", 42, None, b"file-a", {"name": "x"}, "{'id': ", "[1, 2"])
def test_refusals_fail_fast_and_say_what(value: Any) -> None:
    with pytest.raises(AirflowFailException, match="Invalid batch id"):
        ids_from(value, kind="batch")


def test_id_from_wants_exactly_one() -> None:
    assert id_from(LazySequence([FILE])) == "file-a"
    with pytest.raises(AirflowFailException, match="Expected one file id, got 2"):
        id_from(["file-a", "file-b"])
    with pytest.raises(AirflowFailException, match="Expected one file id, got 0"):
        id_from([])


def test_an_id_is_passed_on_as_given_for_the_hook_to_check() -> None:
    assert ids_from("file-a\n") == ["file-a\n"]  # validate_file_id refuses it before any request


def test_a_literal_python_expression_is_never_evaluated() -> None:
    with pytest.raises(AirflowFailException):
        ids_from("[__import__('os').getcwd()]")


def test_a_lazy_sequence_is_never_read_past_its_end() -> None:
    """Airflow's LazyXComSequence logs an error line for each read past its end (issue 22)."""

    class Lazy(Sequence[str]):
        def __init__(self, items: list[str]) -> None:
            self.items, self.reads = items, []

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
            self.reads.append(index)
            return self.items[index]  # IndexError past the end, as the task SDK raises after its 404

    lazy = Lazy(["file-a", "file-b", "file-a"])
    assert ids_from(lazy) == ["file-a", "file-b"]
    assert lazy.reads == [0, 1, 2]
