"""Run the test suite on the oldest and the newest Airflow this provider claims (``make test-compat``).

``make test`` runs the newest Airflow on the default Python. The declared range is only true if it
is tested, so each leg here builds its own virtual environment with one Python and one Airflow
release, installs the package with its ``test`` extra, and runs pytest in it:

- the lowest Airflow that ``pyproject.toml`` declares, on the oldest supported Python (3.10);
- the newest Airflow 3 release on the package index, on the newest Python this machine has (3.13).

Pins: real users install Airflow with the constraints file of their release, which pins what that
release was tested with. Two later releases of Airflow's own dependencies break Airflow 3.1.0
(``structlog`` 25.5 removed ``structlog.dev.Styles``; FastAPI 0.132 makes the in-process execution
API answer 422 to every task; ``universal-pathlib`` 0.3 makes 3.1's ``ObjectStoragePath`` refuse
every protocol), and FastAPI 0.132 breaks 3.2.0 the same way, so the legs pin those as the
constraints files do. They are written to ``<venv>/constraints.txt`` so a failure can be
reproduced by hand.

A leg whose Python is not on the machine is skipped with a message saying what was looked for;
that is not a failure (a developer machine without pyenv still passes ``make test-compat``).

Each venv is cached: ``<venv>/.compat-stamp`` holds a hash of ``pyproject.toml`` and the leg's
pins, and the venv is rebuilt only when that changes. By default the legs run the suite without
the tests marked ``slow`` (large files, memory probes, real Airflow processes): they test the same
code paths as the fast tests on the other release, and the full suite on every leg would add
about ten minutes to CI. ``COMPAT_PYTEST_ARGS`` replaces the default pytest arguments
(``COMPAT_PYTEST_ARGS=`` runs everything), ``COMPAT_LEGS`` picks legs by name (``lowest,newest``),
``COMPAT_NEWEST_AIRFLOW`` names the release of the newest leg instead of asking the index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PYTEST_ARGS = ["-n", "2", "-m", "not slow", "-q", "--continue-on-collection-errors"]
LEG_TIMEOUT_S = 40 * 60


@dataclasses.dataclass(frozen=True)
class Leg:
    name: str
    python: str  # "3.10": the newest patch release of it that is installed is used
    airflow: str  # exact version, or "" to let pip pick the newest it can resolve
    pins: tuple[str, ...] = ()  # what Airflow's constraints file for that release pins and we rely on

    @property
    def venv(self) -> Path:
        return REPO / f".venv-compat-{self.name}-py{self.python}"


def lowest_declared_airflow() -> str:
    """The floor in pyproject's ``apache-airflow>=X.Y`` requirement, as an installable version."""
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'"apache-airflow>=([0-9.]+)', text)
    if match is None:
        raise SystemExit("compat: pyproject.toml declares no 'apache-airflow>=' floor")
    parts = match.group(1).split(".")
    return ".".join([*parts, "0", "0"][:3])


# Pins per Airflow minor release (see the module docstring for why each is needed).
PINS_BY_MINOR: dict[str, tuple[str, ...]] = {
    "3.1": ("structlog<25.5", "fastapi<0.132", "universal-pathlib<0.3"),
    "3.2": ("fastapi<0.132",),
    # Not bugs but resolver time: on a fresh Python 3.13 venv pip backtracks for more than ten minutes
    # over cadwyn, aiobotocore and s3fs (moto/s3fs/providers-amazon in the test extra); these are the
    # versions that install together with Airflow 3.3.2 (as in the main venv), like a constraints file.
    "3.3": (
        "cadwyn==7.0.0",
        "aiobotocore==3.10.0",
        "botocore==1.43.117",
        "boto3==1.43.117",
        "s3fs==2026.9.0",
        "apache-airflow-providers-amazon==9.39.0",
    ),
}


def newest_airflow() -> str:
    """The newest final Airflow 3 release on the index, or "" (let pip pick) if the index cannot be asked.

    Asking explicitly matters: left to itself, pip's resolver may settle on an older release to
    satisfy some test dependency, and the leg would silently test something other than the newest.
    """
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "index", "versions", "apache-airflow"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    match = re.search(r"Available versions: (.*)", out.stdout)
    if out.returncode != 0 or match is None:
        print(f"compat: could not list Airflow releases ({out.stderr.strip()[-200:]}); letting pip choose")
        return ""
    finals = [v.strip() for v in match.group(1).split(",") if re.fullmatch(r"3\.\d+\.\d+", v.strip())]
    return max(finals, key=lambda v: tuple(int(x) for x in v.split(".")), default="")


def legs() -> list[Leg]:
    floor = lowest_declared_airflow()
    newest = os.environ.get("COMPAT_NEWEST_AIRFLOW") or newest_airflow()
    return [
        Leg("lowest", "3.10", floor, PINS_BY_MINOR.get(".".join(floor.split(".")[:2]), ())),
        Leg("newest", "3.13", newest, PINS_BY_MINOR.get(".".join(newest.split(".")[:2]), ())),
    ]


def find_python(version: str) -> tuple[Path | None, list[str]]:
    """The newest installed ``version.*`` interpreter: pyenv's versions first, then ``pythonX.Y`` on PATH."""
    looked: list[str] = []
    roots: list[Path] = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    for root in dict.fromkeys(roots):
        pattern = f"{version}.*"
        looked.append(str(root / "versions" / pattern / "bin" / "python"))
        candidates = [p for p in (root / "versions").glob(pattern) if re.fullmatch(r"\d+\.\d+\.\d+", p.name)]
        candidates.sort(key=lambda p: tuple(int(x) for x in p.name.split(".")))
        for cand in reversed(candidates):
            exe = cand / "bin" / "python"
            if exe.exists():
                return exe, looked
    on_path = shutil.which(f"python{version}")
    looked.append(f"python{version} on PATH")
    return (Path(on_path) if on_path else None), looked


def stamp_key(leg: Leg, python: Path) -> str:
    digest = hashlib.sha256()
    digest.update((REPO / "pyproject.toml").read_bytes())
    digest.update(repr((leg, str(python))).encode())
    return digest.hexdigest()


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def build_venv(leg: Leg, python: Path) -> tuple[float, bool]:
    """Create or reuse the leg's venv; returns (seconds spent, reused)."""
    stamp = leg.venv / ".compat-stamp"
    key = stamp_key(leg, python)
    if stamp.exists() and stamp.read_text().strip() == key:
        return 0.0, True
    started = time.monotonic()
    if leg.venv.exists():
        shutil.rmtree(leg.venv)
    run([str(python), "-m", "venv", str(leg.venv)])
    pip = [str(leg.venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "install", "--quiet", "--upgrade", "pip"])
    constraints = leg.venv / "constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in leg.pins))
    airflow = f"apache-airflow=={leg.airflow}" if leg.airflow else "apache-airflow"
    run([*pip, "install", "--quiet", "-c", str(constraints), "-e", f"{REPO}[test]", airflow], cwd=REPO)
    stamp.write_text(key + "\n")
    return time.monotonic() - started, False


def installed_versions(leg: Leg) -> str:
    code = (
        "import importlib.metadata as m, platform;"
        "print('airflow', m.version('apache-airflow'), '/ task-sdk', m.version('apache-airflow-task-sdk'),"
        " '/ python', platform.python_version())"
    )
    out = subprocess.run([str(leg.venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_suite(leg: Leg, pytest_args: list[str]) -> tuple[float, int, str]:
    """Run pytest in the leg's venv; returns (seconds, exit code, pytest's closing line)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "AIRFLOW_HOME")}
    env["PATH"] = f"{leg.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(leg.venv / "bin" / "python"), "-m", "pytest", *pytest_args, "-o", f"cache_dir={leg.venv}/.pytest_cache"]
    print("+", shlex.join(cmd), flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        if re.search(r"\d+ (passed|failed|error)", line):
            last = line.strip().strip("=").strip()
    try:
        code = proc.wait(timeout=LEG_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -1
    return time.monotonic() - started, code, last


def main() -> int:
    raw = os.environ.get("COMPAT_PYTEST_ARGS")
    pytest_args = DEFAULT_PYTEST_ARGS if raw is None else shlex.split(raw)
    wanted = {n.strip() for n in os.environ.get("COMPAT_LEGS", "").split(",") if n.strip()}
    summary: list[str] = []
    failed = False
    for leg in legs():
        if wanted and leg.name not in wanted:
            continue
        label = f"{leg.name}: Airflow {leg.airflow or '(newest)'} on Python {leg.python}"
        python, looked = find_python(leg.python)
        if python is None:
            summary.append(f"SKIPPED {label}: no Python {leg.python} here (looked for {', '.join(looked)})")
            continue
        print(f"\n=== compat {label} ({python}); pins: {', '.join(leg.pins) or 'none'}", flush=True)
        try:
            build_s, reused = build_venv(leg, python)
        except subprocess.CalledProcessError as exc:
            summary.append(f"FAILED {label}: building {leg.venv.name} failed ({exc})")
            failed = True
            continue
        versions = installed_versions(leg)
        suite_s, code, closing = run_suite(leg, pytest_args)
        venv_note = "venv reused" if reused else f"venv built in {build_s:.0f} s"
        verdict = "ok" if code == 0 else f"FAILED (pytest exit {code})"
        summary.append(f"{verdict} {label} [{versions}]: {venv_note}, suite {suite_s:.0f} s: {closing or 'no summary'}")
        failed = failed or code != 0
    print("\n=== compat summary" + (f" (pytest {shlex.join(pytest_args)})" if pytest_args else ""))
    for line in summary:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
