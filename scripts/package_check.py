"""Prove the package installs and works as a user gets it (``make package-check``, run by ``.ci/run``).

1. Build the sdist and the wheel (``python -m build``) into a temporary directory, and check their
   metadata with ``twine check --strict``; check the wheel names the version of ``__version__`` and
   carries ``py.typed`` and the provider entry point, and no tests.
2. Install the wheel (with its ``emulator`` extra) into a clean virtualenv outside the source tree,
   with the newest supported Airflow on the newest supported Python and that release's constraints
   (``constraints/airflow-<airflow>-py<python>.txt``, see "Constraints" below).
3. From a temporary directory (never the checkout: nothing can be imported from the source tree),
   with a temporary ``AIRFLOW_HOME``, start the emulator *from the installed package*, and run
   ``airflow dags test`` of a tiny DAG that uploads a file, downloads it back and deletes it; check the
   bytes that landed, that the code ran from the virtualenv's ``site-packages``, and that the file is
   gone from the emulator.
4. Check that ``airflow providers list`` shows the provider with the wheel's version.

Constraints: Airflow publishes a constraints file per release and Python
(``https://raw.githubusercontent.com/apache/airflow/constraints-<ver>/constraints-<py>.txt``); it is
not a package on any index, and CI here reaches only package indexes. So the repository carries the
equivalent pin set: ``pip freeze`` of the venv the test suite runs on for the newest Airflow (the
``newest`` leg of ``scripts/compat.py``), written by ``python scripts/package_check.py
--freeze-constraints <venv>``. Where the official file can be downloaded, pass it with
``PACKAGE_CHECK_CONSTRAINTS=<path or URL>`` instead.

The clean virtualenv is cached like the compat legs' venvs: ``<venv>/.package-check-stamp`` holds a
hash of the Python, the constraints and the wheel's declared dependencies. When that is unchanged
only the wheel is reinstalled (``--no-deps``) and ``pip check`` proves its requirements are still met;
otherwise the venv is rebuilt and pip resolves the wheel's requirements against the constraints.
The venv lives in ``$PACKAGE_CHECK_VENV`` (default ``~/.cache/airflow-provider-openai-files/``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from compat import find_python  # noqa: E402  (scripts/ is not a package)

#: The newest Airflow release the provider supports, on the newest Python it supports.
AIRFLOW = "3.3.2"
PYTHON = "3.13"
CONSTRAINTS = REPO / "constraints" / f"airflow-{AIRFLOW}-py{PYTHON}.txt"
DIST_NAME = "airflow-provider-openai-files"
SMOKE_DAG_ID = "openai_files_package_smoke"
#: A ``name==version`` line of ``pip freeze`` (not a comment, an editable or a direct URL).
PIN = re.compile(r"^[A-Za-z0-9][\w.\-]*==")

SMOKE_DAG = '''
"""Upload a file to the emulator, download it back, delete it: the installed package end to end."""

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

from airflow_openai_files.operators import (
    OpenAIDeleteFileOperator,
    OpenAIDownloadFileOperator,
    OpenAIUploadFileOperator,
)

WORK = Path(os.environ["PACKAGE_CHECK_WORK"])


@dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def smoke():
    upload = OpenAIUploadFileOperator(task_id="upload", file_path=str(WORK / "input.jsonl"), purpose="batch")
    download = OpenAIDownloadFileOperator(
        task_id="download", file_id=upload.output, destination=str(WORK / "landed.jsonl"), overwrite=True
    )
    delete = OpenAIDeleteFileOperator(task_id="delete", file_id=upload.output)

    @task
    def report(uploaded, landed):
        import airflow_openai_files

        record = {{"uploaded": uploaded, "landed": landed, "package_file": airflow_openai_files.__file__}}
        (WORK / "report.json").write_text(json.dumps(record))

    report(upload.output, download.output) >> delete


smoke()
'''

BATCH_LINE = {
    "custom_id": "smoke-1",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Is the package installed?"}]},
}


class CheckFailed(Exception):
    pass


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", shlex.join(cmd), flush=True)
    done = subprocess.run(cmd, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise CheckFailed(f"{shlex.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would let the checkout or another venv leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP") and not k.startswith("AIRFLOW")
    }
    env.update(extra)
    return env


# -- 1. build and metadata --------------------------------------------------------------------------------


def build(outdir: Path) -> tuple[Path, Path]:
    run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(outdir), str(REPO)], env=clean_env())
    wheels, sdists = sorted(outdir.glob("*.whl")), sorted(outdir.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise CheckFailed(f"expected one wheel and one sdist in {outdir}, got {[p.name for p in outdir.iterdir()]}")
    run([sys.executable, "-m", "twine", "check", "--strict", str(wheels[0]), str(sdists[0])])
    return wheels[0], sdists[0]


def declared_version() -> str:
    text = (REPO / "airflow_openai_files" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if match is None:
        raise CheckFailed('airflow_openai_files/__init__.py has no __version__ = "..." line')
    return match.group(1)


def wheel_metadata(wheel: Path) -> tuple[str, list[str]]:
    """The wheel's version and ``Requires-Dist`` lines, after checking what it must and must not carry."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(meta_name).decode()
        entry_points = archive.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    version = re.search(r"^Version: (.+)$", metadata, re.M)
    if version is None or version.group(1).strip() != declared_version():
        raise CheckFailed(f"wheel version {version and version.group(1)!r} != __version__ {declared_version()!r}")
    if "airflow_openai_files/py.typed" not in names:
        raise CheckFailed("the wheel does not carry airflow_openai_files/py.typed")
    if any(n.startswith(("tests/", "dags_examples/", "scripts/")) for n in names):
        raise CheckFailed("the wheel carries tests, examples or scripts")
    if "provider_info = airflow_openai_files.provider_info:get_provider_info" not in entry_points:
        raise CheckFailed(f"the wheel has no apache_airflow_provider entry point:\n{entry_points}")
    requires = sorted(line for line in metadata.splitlines() if line.startswith("Requires-Dist:"))
    return version.group(1).strip(), requires


# -- 2. the clean virtualenv ------------------------------------------------------------------------------


def venv_dir() -> Path:
    root = os.environ.get("PACKAGE_CHECK_VENV")
    path = Path(root) if root else Path.home() / ".cache" / DIST_NAME / f"package-check-airflow{AIRFLOW}-py{PYTHON}"
    if path.resolve().is_relative_to(REPO):
        raise CheckFailed(f"the clean venv must be outside the source tree, not {path}")
    return path


def constraints_file(workdir: Path) -> Path:
    given = os.environ.get("PACKAGE_CHECK_CONSTRAINTS")
    if not given:
        return CONSTRAINTS
    if "://" in given:
        target = workdir / "constraints.txt"
        run(["curl", "-fsSL", "-o", str(target), given])
        return target
    return Path(given)


def install(wheel: Path, requires: list[str], python: Path, constraints: Path) -> tuple[Path, str]:
    """Install the wheel into the cached clean venv; returns (venv, what was done)."""
    venv = venv_dir()
    stamp = venv / ".package-check-stamp"
    digest = hashlib.sha256()
    digest.update(repr((str(python), AIRFLOW, requires)).encode())
    digest.update(constraints.read_bytes())
    key = digest.hexdigest()
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    target = f"{DIST_NAME} [emulator] @ {wheel.as_uri()}"
    if stamp.exists() and stamp.read_text().strip() == key:
        run([*pip, "install", "--no-deps", "--force-reinstall", str(wheel)], env=clean_env())
        run([*pip, "check"], env=clean_env())
        return venv, "reused (wheel reinstalled, pip check passed)"
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run([str(python), "-m", "venv", str(venv)], env=clean_env())
    run([*pip, "install", "--upgrade", "pip"], env=clean_env())
    run([*pip, "install", "-c", str(constraints), target, f"apache-airflow=={AIRFLOW}"], env=clean_env())
    run([*pip, "check"], env=clean_env())
    stamp.write_text(key + "\n")
    return venv, "built"


# -- 3. the smoke DAG and 4. providers list ---------------------------------------------------------------


def start_emulator(venv: Path, work: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [str(venv / "bin" / "python"), "-m", "airflow_openai_files.emulator", "--port", "0"]
    cmd += ["--data-dir", str(work / "emulator"), "--api-key", "sk-package-check"]
    print("+", shlex.join(cmd), flush=True)
    child = subprocess.Popen(cmd, cwd=work, env=clean_env(), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if "listening on " not in line:
        child.kill()
        raise CheckFailed(f"the installed emulator did not start: {line!r}")
    return child, line.rsplit(" ", 1)[1].strip()


def smoke(venv: Path, version: str) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="package-check-"))
    home, dags = work / "airflow_home", work / "dags"
    dags.mkdir(parents=True)
    (dags / "smoke.py").write_text(textwrap.dedent(SMOKE_DAG.format(dag_id=SMOKE_DAG_ID)))
    content = (json.dumps(BATCH_LINE) + "\n").encode()
    (work / "input.jsonl").write_bytes(content)
    emulator, base_url = start_emulator(venv, work)
    facts: list[str] = []
    try:
        connection = {"conn_type": "openai_files", "host": base_url, "password": "sk-package-check"}
        env = clean_env(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW_CONN_OPENAI_FILES_DEFAULT=json.dumps(connection),
            PACKAGE_CHECK_WORK=str(work),
        )
        airflow = str(venv / "bin" / "airflow")
        run([airflow, "db", "migrate"], cwd=work, env=env, timeout=600)
        started = time.monotonic()
        run([airflow, "dags", "test", SMOKE_DAG_ID], cwd=work, env=env, timeout=600)
        facts.append(f"airflow dags test {SMOKE_DAG_ID}: {time.monotonic() - started:.1f}s")
        report = json.loads((work / "report.json").read_text())
        landed = Path(report["landed"])
        if landed.read_bytes() != content:
            raise CheckFailed(f"{landed} does not hold the {len(content)} bytes uploaded")
        site = venv / "lib" / f"python{PYTHON}" / "site-packages"
        if not Path(report["package_file"]).resolve().is_relative_to(site.resolve()):
            raise CheckFailed(f"the DAG imported the provider from {report['package_file']}, not from {site}")
        file_id = report["uploaded"]["id"]
        listed = run(
            [str(venv / "bin" / "python"), "-c", LIST_FILES, base_url], cwd=work, env=clean_env()
        ).stdout.split()
        if file_id in listed:
            raise CheckFailed(f"{file_id} is still on the emulator after the delete task")
        facts.append(f"uploaded {file_id} ({len(content)} bytes), landed byte-identical, deleted; ran from {site}")
        providers = json.loads(run([airflow, "providers", "list", "-o", "json"], cwd=work, env=env, timeout=300).stdout)
        ours = [p for p in providers if p.get("package_name") == DIST_NAME]
        if not ours or ours[0].get("version") != version:
            raise CheckFailed(f"airflow providers list shows {ours or 'no ' + DIST_NAME}, expected version {version}")
        facts.append(f"airflow providers list: {DIST_NAME} {ours[0]['version']}")
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
        if emulator.stdout is not None:
            emulator.stdout.close()
    shutil.rmtree(work, ignore_errors=True)
    return facts


LIST_FILES = """
import sys, urllib.request, json
request = urllib.request.Request(sys.argv[1] + "/files", headers={"Authorization": "Bearer sk-package-check"})
print(" ".join(item["id"] for item in json.load(urllib.request.urlopen(request))["data"]))
"""


def freeze_constraints(venv: Path) -> int:
    """Write ``CONSTRAINTS`` from ``pip freeze`` of ``venv`` (the project itself and editables left out)."""
    python = venv / "bin" / "python"
    frozen = run([str(python), "-m", "pip", "--disable-pip-version-check", "freeze"]).stdout
    versions = run(
        [str(python), "-c", "import airflow, platform; print(airflow.__version__, platform.python_version())"]
    )
    airflow_version, python_version = versions.stdout.split()
    if airflow_version != AIRFLOW or not python_version.startswith(PYTHON + "."):
        raise CheckFailed(f"{venv} has Airflow {airflow_version} on Python {python_version}, not {AIRFLOW} / {PYTHON}")
    pins = sorted(
        (
            line
            for line in frozen.splitlines()
            if re.match(r"^[A-Za-z0-9][\w.\-]*==", line) and not line.lower().startswith(DIST_NAME)
        ),
        key=str.lower,
    )
    CONSTRAINTS.parent.mkdir(exist_ok=True)
    CONSTRAINTS.write_text(
        f"# Pins for installing {DIST_NAME} with Airflow {AIRFLOW} on Python {PYTHON}: `pip freeze` of the venv\n"
        f"# the test suite ran in (scripts/compat.py, leg 'newest', Python {python_version}), standing in for\n"
        f"# Airflow's constraints-{AIRFLOW}/constraints-{PYTHON}.txt, which CI cannot download (see\n"
        "# scripts/package_check.py). Regenerate: python scripts/package_check.py --freeze-constraints <venv>\n"
        + "".join(pin + "\n" for pin in pins)
    )
    print(f"wrote {CONSTRAINTS.relative_to(REPO)}: {len(pins)} pins")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freeze-constraints", metavar="VENV", type=Path, help="write the constraints file and exit")
    args = parser.parse_args()
    if args.freeze_constraints:
        return freeze_constraints(args.freeze_constraints)
    began = time.monotonic()
    python, looked = find_python(PYTHON)
    if python is None:
        print(f"package-check FAILED: no Python {PYTHON} here (looked for {', '.join(looked)})")
        return 1
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="package-check-dist-") as tmp:
        try:
            step = time.monotonic()
            wheel, sdist = build(Path(tmp))
            version, requires = wheel_metadata(wheel)
            summary.append(
                f"built {sdist.name} ({sdist.stat().st_size} bytes) and {wheel.name} ({wheel.stat().st_size} bytes), "
                f"twine check passed ({time.monotonic() - step:.1f}s)"
            )
            step = time.monotonic()
            constraints = constraints_file(Path(tmp))
            venv, how = install(wheel, requires, python, constraints)
            summary.append(
                f"clean venv {venv} (Python {PYTHON}, Airflow {AIRFLOW}, constraints {constraints.name}): "
                f"{how} in {time.monotonic() - step:.1f}s"
            )
            summary += smoke(venv, version)
        except CheckFailed as err:
            print(f"\npackage-check FAILED: {err}")
            return 1
    print("\n=== package-check passed in %.0fs" % (time.monotonic() - began))
    for line in summary:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
