"""Each example DAG file parses on its own in a subfolder of a DAGs folder, as teams place them (issue 22).

Airflow puts only the DAGs folder itself on ``sys.path``: an example that imported a sibling module
(``from _staging import ...``) failed there with ``ModuleNotFoundError``. The staging choice now lives in the
package (:mod:`airflow_openai_files.transfer.staging`); this parses each file copied alone, in a fresh
interpreter whose working directory and ``sys.path`` know nothing of this checkout's ``dags_examples``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (REPO / "dags_examples").glob("*.py") if not p.name.startswith("_"))

PARSE = """
import json, sys
from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])  # [core] load_examples is off
print(json.dumps({"dag_ids": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "files": sorted({dag.fileloc for dag in bag.dags.values()})}))
"""


def test_every_example_is_a_dag_file_and_no_helper_module_is_left() -> None:
    assert EXAMPLES, "no example DAG files found"
    helpers = sorted(p.name for p in (REPO / "dags_examples").glob("_*.py"))
    assert helpers == [], f"example DAGs must not need sibling modules: {helpers}"


@pytest.mark.slow  # an Airflow DagBag in a fresh interpreter per example
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_an_example_copied_alone_into_a_dags_subfolder_parses(example: Path, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    team = dags / "team_a" / "openai"
    team.mkdir(parents=True)
    shutil.copy(example, team / example.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'home' / 'airflow.db'}",
    )
    done = subprocess.run(
        [sys.executable, "-c", PARSE, str(dags)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}, result["errors"]
    assert result["dag_ids"], f"{example.name} defined no DAG when parsed from {team}"
    assert all("team_a/openai" in f for f in result["files"]), result["files"]
