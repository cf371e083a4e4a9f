"""scripts/check_structure.py: passes on the package, and catches what it is there to catch, lazy
imports included (each case is a small package tree written to ``tmp_path``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_structure.py"
PKG = "airflow_openai_files"


def check(root: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name in ("", "resources", "client", "hooks", "operators", "emulator", "transfer"):
        init = tmp_path / PKG / name / "__init__.py"
        init.parent.mkdir(parents=True, exist_ok=True)
        init.touch()
    for name in ("limits", "exceptions", "_compat"):
        (tmp_path / PKG / f"{name}.py").touch()
    for relative, text in files.items():
        (tmp_path / PKG / relative).write_text(text)
    return tmp_path


def test_the_package_passes() -> None:
    code, out = check(REPO)
    assert code == 0, out
    assert "0 problem(s)" in out


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    code, out = check(
        tree(
            tmp_path,
            {
                "resources/files.py": f"import re\nfrom {PKG}.limits import X\nfrom {PKG}.resources import batches\n",
                "resources/batches.py": "from typing import Any\n",
                "limits.py": "import re\n",
                "exceptions.py": f"from {PKG}.limits import X\n",
                "client/transport.py": f"from {PKG}.resources import files\n",
                "hooks/files.py": f"from {PKG}.client import transport\n",
                "operators/files.py": f"from {PKG}.hooks import files\n",
                "emulator/app.py": (
                    f"import fastapi\nfrom {PKG}.resources import files\nfrom {PKG} import exceptions, limits\n"
                ),
                # a package importing its own parts lazily assembles itself: no cycle
                "hooks/__init__.py": "def __getattr__(name):\n    from . import files\n    return files\n",
            },
        )
    )
    assert code == 0, out


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"resources/files.py": f"from {PKG}.client import transport\n"}, "resources/files"),
        ({"client/transport.py": f"def f():\n    from {PKG}.hooks import files\n"}, "lazily imports"),
        ({"hooks/files.py": f"from {PKG}.operators.files import Op\n"}, "hooks.files (hooks) imports"),
        ({"transfer/uploads.py": f"def f():\n    import {PKG}.emulator.app\n"}, "transfer.uploads (middle) lazily"),
        ({"emulator/app.py": f"from {PKG}.client.transport import send\n"}, "emulator.app (emulator) imports"),
        ({"operators/files.py": f"from {PKG}.emulator import app\n"}, "operators.files (tasks) imports"),
        ({"resources/files.py": f"from {PKG}.exceptions import E\n"}, "resources.files (resources) imports"),
        ({"limits.py": f"from {PKG} import exceptions\n"}, "limits (limits) imports"),
        ({"emulator/app.py": f"def f():\n    from {PKG} import _compat\n"}, "emulator.app (emulator) lazily"),
    ],
    ids=[
        "resources-client",
        "client-hooks-lazy",
        "hooks-operators",
        "outside-emulator-lazy",
        "emulator-client",
        "operators-emulator",
        "resources-exceptions",
        "limits-exceptions",
        "emulator-compat-lazy",
    ],
)
def test_a_layering_violation_fails(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    files.setdefault("client/transport.py", "")
    files.setdefault("hooks/files.py", "")
    files.setdefault("operators/files.py", "")
    files.setdefault("emulator/app.py", "")
    code, out = check(tree(tmp_path, files))
    assert code == 1, out
    assert "layering:" in out and expected.replace("/", ".") in out, out


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"resources/files.py": "import requests\n"}, "not standard library: airflow_openai_files.resources.files"),
        ({"limits.py": "def f():\n    import airflow\n"}, "not standard library: airflow_openai_files.limits"),
        ({"emulator/app.py": "from airflow.models import Connection\n"}, "forbidden import: airflow_openai_files"),
    ],
    ids=["resources-third-party", "limits-airflow-lazy", "emulator-airflow"],
)
def test_an_import_outside_the_package_that_a_layer_may_not_make_fails(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    """resources/ and limits: standard library only (the emulator's subprocess reads them); the emulator
    never imports Airflow."""
    code, out = check(tree(tmp_path, files))
    assert code == 1, out
    assert expected in out, out


def test_a_cycle_closed_by_a_lazy_import_fails(tmp_path: Path) -> None:
    code, out = check(
        tree(
            tmp_path,
            {
                "transfer/a.py": f"from {PKG}.transfer import b\n",
                "transfer/b.py": f"def later():\n    from {PKG}.transfer import a\n",
            },
        )
    )
    assert code == 1, out
    assert f"import cycle: {PKG}.transfer.a <-> {PKG}.transfer.b" in out
    assert f"{PKG}.transfer.b -> {PKG}.transfer.a (lazy)" in out


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    source = f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from {PKG}.hooks import files\n"
    code, out = check(tree(tmp_path, {"resources/files.py": source, "hooks/files.py": ""}))
    assert code == 0, out
