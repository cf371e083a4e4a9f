"""The package registers itself as an Airflow provider with a declarative ``openai_files`` connection form."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import warnings
from importlib.metadata import entry_points, packages_distributions
from pathlib import Path

import pytest

from airflow_openai_files import __version__
from airflow_openai_files.provider_info import get_provider_info


def test_entry_point_points_at_provider_info() -> None:
    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_openai_files")]
    assert len(eps) == 1 and eps[0].load() is get_provider_info


def test_provider_info_declares_everything() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-openai-files"
    assert info["versions"] == [__version__]
    modules = {
        key: [m for group in info[key] for m in group["python-modules"]]
        for key in ("hooks", "operators", "sensors", "triggers")
    }
    assert modules == {
        "hooks": ["airflow_openai_files.hooks"],
        "operators": ["airflow_openai_files.operators"],
        "sensors": ["airflow_openai_files.sensors"],
        "triggers": ["airflow_openai_files.triggers"],
    }
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "openai_files" and conn["hook-name"] == "OpenAI Files"
    behaviour = conn["ui-field-behaviour"]
    assert sorted(behaviour["hidden-fields"]) == ["login", "port", "schema"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}
    assert behaviour["placeholders"]["host"] == "https://api.openai.com/v1"
    assert {"organization", "project", "timeout", "max_retries"} <= set(conn["conn-fields"])


def test_providers_manager_knows_the_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    try:  # Airflow 3.2+ keeps the hooks' registry in the task SDK (ProvidersManager.hooks is deprecated there)
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hook = ProvidersManagerTaskRuntime().hooks["openai_files"]
    except ImportError:
        hook = manager.hooks["openai_files"]
    assert hook is not None and hook.hook_class_name == "airflow_openai_files.hooks.OpenAIFilesHook"
    assert hook.connection_id_attribute_name == "openai_conn_id"
    from airflow_openai_files._compat import AIRFLOW_V_3_2_PLUS

    if not AIRFLOW_V_3_2_PLUS and importlib.util.find_spec("flask_appbuilder") is None:
        # Airflow 3.1 builds the form from the hook's methods, and only with flask_appbuilder (the FAB
        # provider) installed; the declarative ui-field-behaviour/conn-fields are read from 3.2 on.
        return
    assert manager.field_behaviours["openai_files"]["relabeling"]["password"] == "API Key"
    widgets = manager.connection_form_widgets
    assert {"extra__openai_files__organization", "extra__openai_files__max_retries"} <= set(widgets)


def test_airflow_providers_list_shows_the_package(tmp_path: Path) -> None:
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    airflow = Path(sys.executable).with_name("airflow")
    out = subprocess.run([str(airflow), "providers", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "airflow-provider-openai-files" in out.stdout


# --- Packaging: what pyproject declares is what the package imports -------------------------------

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "airflow_openai_files"


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the 3.10 compat leg skips these checks
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports(paths: list[Path]) -> set[str]:
    """Top-level modules imported anywhere in ``paths`` (also inside functions), minus stdlib and ours."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("airflow_openai_files", "__future__")}


def _distributions_of(modules: set[str]) -> dict[str, set[str]]:
    mapping = packages_distributions()
    missing = {m for m in modules if m not in mapping}
    assert not missing, f"imported but not installed: {missing}"
    return {m: {d.lower().replace("_", "-") for d in mapping[m]} for m in modules}


def test_every_runtime_import_is_a_declared_dependency() -> None:
    project = _pyproject()["project"]
    declared = {_dist_name(r) for r in project["dependencies"]}
    assert "apache-airflow" in declared
    declared |= {"apache-airflow-core", "apache-airflow-task-sdk"}  # what apache-airflow installs `airflow` from
    # Optional features import their extra's distributions inside the functions that need them (checked below).
    for extra in ("azure", "openlineage"):
        declared |= {_dist_name(r) for r in project["optional-dependencies"][extra]}
    declared |= {"azure-core"}  # azure-identity's own dependency, where `azure.core.credentials` comes from
    runtime = [p for p in PACKAGE.rglob("*.py") if "emulator" not in p.relative_to(PACKAGE).parts]
    undeclared = {m: d for m, d in _distributions_of(_third_party_imports(runtime)).items() if not d & declared}
    assert not undeclared, f"imported by the package but not in [project] dependencies: {undeclared}"


def test_optional_extras_are_imported_lazily() -> None:
    """``azure`` (azure-identity) is an extra: no module may import it when the package is imported."""
    import ast

    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only; imports inside functions run when the feature is used
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "azure" or n.startswith("azure.") for n in names), (
                f"{path} imports azure at import time"
            )


def test_every_emulator_import_is_in_the_emulator_extra() -> None:
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    available = {_dist_name(r) for r in project["dependencies"] + extras["emulator"]}
    available |= {"apache-airflow-core", "apache-airflow-task-sdk", "pytest"}  # pytest: only its pytest plugin
    emulator = list((PACKAGE / "emulator").rglob("*.py"))
    undeclared = {m: d for m, d in _distributions_of(_third_party_imports(emulator)).items() if not d & available}
    assert not undeclared, f"imported by the emulator but not in the 'emulator' extra: {undeclared}"
    assert "airflow-provider-openai-files[emulator,azure,openlineage]" in extras["test"]
    assert {_dist_name(r) for r in extras["azure"]} == {"azure-identity"}
    assert {_dist_name(r) for r in extras["openlineage"]} == {"apache-airflow-providers-openlineage"}


def test_one_version_and_the_project_links() -> None:
    pyproject = _pyproject()
    assert "version" not in pyproject["project"] and pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "airflow_openai_files.__version__"}
    assert get_provider_info()["versions"] == [__version__]
    urls = pyproject["project"]["urls"]
    assert {"Documentation", "Source", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())


@pytest.mark.slow  # the Airflow CLI in a subprocess
def test_airflow_providers_list_shows_the_version(tmp_path: Path) -> None:
    """The version users see (``airflow providers list``) is ``__version__``, as installed (issue 22)."""
    from importlib.metadata import version

    assert version("airflow-provider-openai-files") == __version__
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "providers", "list", "-o", "json"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip
    import json

    listed = {p["package_name"]: p["version"] for p in json.loads(done.stdout)}
    assert listed["airflow-provider-openai-files"] == __version__


# --- Compatibility: the names other modules import from _compat, and the compat target --------------


def test_compat_names_are_airflows_own_classes() -> None:
    """What the package raises must be what the installed Airflow's task runner catches."""
    import airflow
    import airflow.exceptions as core

    from airflow_openai_files import _compat

    for name in ("AirflowException", "AirflowFailException", "AirflowSkipException", "AirflowNotFoundException",
                 "AirflowSensorTimeout", "AirflowRescheduleException", "TaskDeferred"):  # fmt: skip
        with warnings.catch_warnings():  # 3.3 deprecates the core aliases: they still are the same classes
            warnings.simplefilter("ignore")
            core_class = getattr(core, name, None)
        assert core_class is None or getattr(_compat, name) is core_class, name
    assert callable(_compat.conf.getboolean) and callable(_compat.mask_secret)
    assert _compat.AIRFLOW_VERSION[:2] == tuple(int(x) for x in airflow.__version__.split(".")[:2])
    assert _compat.task_state_store({}) is None
    assert _compat.SUPPORTS_START_FROM_TRIGGER == _compat.AIRFLOW_V_3_3_PLUS
    if _compat.AIRFLOW_V_3_3_PLUS:
        from airflow.sdk import NEVER_EXPIRE

        assert _compat.NEVER_EXPIRE is NEVER_EXPIRE
    # Every module of the package imports on this Airflow.
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        if "emulator" not in module and not module.endswith("__main__"):
            importlib.import_module(module)


def _compat_script(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COMPAT_NEWEST_AIRFLOW", "3.9.9")  # no index lookup in a test
    spec = importlib.util.spec_from_file_location("compat_script", REPO / "scripts" / "compat.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "compat_script", module)
    spec.loader.exec_module(module)
    return module


def test_compat_target_tests_the_declared_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    compat = _compat_script(monkeypatch)
    floor = re.search(r'"apache-airflow>=([0-9.]+)', (REPO / "pyproject.toml").read_text())
    assert floor is not None
    lowest, newest = compat.legs()
    assert (lowest.airflow, lowest.python) == (f"{floor.group(1)}.0", "3.10")
    assert (newest.airflow, newest.python) == ("3.9.9", "3.13")
    if lowest.airflow.startswith("3.1."):  # what Airflow's 3.1 constraints pin and 3.1.0 needs
        assert set(lowest.pins) == {"structlog<25.5", "fastapi<0.132", "universal-pathlib<0.3"}


def test_compat_target_skips_a_missing_python(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    compat = _compat_script(monkeypatch)
    monkeypatch.delenv("COMPAT_LEGS", raising=False)
    monkeypatch.setattr(compat, "legs", lambda: [compat.Leg("ghost", "2.1", "3.1.0")])
    assert compat.main() == 0
    out = capsys.readouterr().out
    assert "SKIPPED ghost: Airflow 3.1.0 on Python 2.1: no Python 2.1 here" in out
    assert not (REPO / ".venv-compat-ghost-py2.1").exists()
