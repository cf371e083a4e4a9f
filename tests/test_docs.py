"""The README and docs/ stay true: links resolve, code samples parse and import, the first DAG runs.

A user reads the README first and copies its samples; a broken link or a sample that no longer imports is a
bug report waiting to happen. The README's first DAG is run as the README tells the user to run it
(`airflow dags test`) against the emulator, and its end state is checked.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, REPO / "CHANGELOG.md", *DOCS]
README_MAX_LINES = 200

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _text(page: Path) -> str:
    """The page without HTML comments (placeholders for sections still to come) and fenced code."""
    return _FENCE.sub("", _COMMENT.sub("", page.read_text(encoding="utf-8")))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (``_`` and ``-`` kept), spaces to ``-``."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", _text(page), re.MULTILINE)}


def _relative_links(page: Path) -> list[str]:
    return [t for t in _LINK.findall(_text(page)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def _python_blocks(page: Path) -> list[str]:
    return [
        body for lang, body in _FENCE.findall(_COMMENT.sub("", page.read_text(encoding="utf-8"))) if lang == "python"
    ]


def test_docs_exist() -> None:
    names = {p.name for p in DOCS}
    expected = {
        "connection.md",
        "hooks.md",
        "operators.md",
        "sensors.md",
        "emulator.md",
        "failure-behaviour.md",
        "fidelity.md",
        "performance.md",
        "deployment.md",
        "layout.md",
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"


def test_readme_stays_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (limit {README_MAX_LINES})"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_readme_names_every_pipeline_make_demo_runs() -> None:
    """The quick start once said `make demo` ran one pipeline while it ran two: name each one it runs."""
    tree = ast.parse((REPO / "scripts" / "demo.py").read_text(encoding="utf-8"))
    [dag_ids] = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DAG_IDS" for t in node.targets)
    ]
    text = README.read_text(encoding="utf-8")
    assert [d for d in dag_ids if f"`{d}`" not in text] == []


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _relative_links(README)}
    assert not [p.name for p in DOCS if p.resolve() not in linked]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_python_samples_parse_and_import(page: Path) -> None:
    """Every ``python`` block is valid Python, and every name it imports from the package exists."""
    for block in _python_blocks(page):
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow_openai_files"):
                module = importlib.import_module(node.module or "")
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"{page.name}: `from {node.module} import {', '.join(missing)}` fails"


#: Samples that name the reader's own files (``/data/train.jsonl``) and so are only parsed and import-checked.
ILLUSTRATIONS = {"hooks.md"}


@pytest.mark.parametrize(
    "page", [p for p in PAGES if p.name not in ILLUSTRATIONS], ids=lambda p: str(p.relative_to(REPO))
)
def test_python_samples_run(page: Path) -> None:
    """Every other sample runs as printed: DAGs build, operators accept their arguments, the emulator answers."""
    for number, block in enumerate(_python_blocks(page)):
        exec(compile(block, f"{page.name}, python block {number + 1}", "exec"), {"__name__": "docs_sample"})


def _first_dag() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A first DAG", 1)[1]
    blocks = [body for lang, body in _FENCE.findall(section) if lang == "python"]
    assert blocks, "README.md: no python block under '## A first DAG'"
    return blocks[0]


@pytest.mark.slow  # Airflow's own processes: `airflow db migrate` and `airflow dags test` (make test-slow)
def test_readme_first_dag_runs_against_the_emulator(openai_files_emulator: Any, tmp_path: Path) -> None:
    """`airflow dags test first_batch`, as the README says: the batch completes and the answers land."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "first_batch.py").write_text(_first_dag(), encoding="utf-8")
    home, temp = tmp_path / "airflow_home", tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW_CONN_OPENAI_FILES_DEFAULT=openai_files_emulator.airflow_connection(),
        TMPDIR=str(temp),  # the DAG works under tempfile.gettempdir()
    )
    airflow = Path(sys.executable).with_name("airflow")
    for command in (["db", "migrate"], ["dags", "test", "first_batch"]):
        done = subprocess.run(
            [str(airflow), *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"airflow {' '.join(command)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    [batch] = openai_files_emulator.batches()
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    output = temp / "openai_first_batch" / "output.jsonl"
    answers = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert sorted(a["custom_id"] for a in answers) == ["q0", "q1", "q2"]
    assert all(a["response"]["status_code"] == 200 for a in answers)
