#!/usr/bin/env bash
# Runs tests/distributed: installs what is missing (Debian packages redis-server and postgresql, the Python
# packages of the CeleryExecutor + S3 deployment), then runs pytest inside a private network namespace
# when possible, so that even the servers that bind every interface (Airflow's worker log servers) are
# reachable from loopback only. A component that cannot be installed is reported; the run then exits 0,
# or 1 under CI=true, where it should have been possible.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
PIP_PACKAGES=(apache-airflow-providers-celery "celery<5.7" redis psycopg2-binary asyncpg "moto[server]"
              apache-airflow-providers-amazon s3fs boto3)

unavailable() {
    echo "test-distributed: cannot run: $*" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    echo "test-distributed: skipped (exit 0 outside CI)" >&2
    exit 0
}

have_debs() { command -v redis-server >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; }
if ! have_debs; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test-distributed: installing redis-server and postgresql from the distribution's packages"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server postgresql \
            >/dev/null || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends redis-server postgresql >/dev/null; }
    fi
    have_debs || unavailable "redis-server and PostgreSQL are not installed and could not be (needs root and apt-get)"
fi

missing=$("$PYTHON" - <<'PY'
import importlib.util
mods = {"airflow.providers.celery": "apache-airflow-providers-celery", "celery": "celery", "redis": "redis",
        "psycopg2": "psycopg2-binary", "asyncpg": "asyncpg", "moto": "moto[server]", "flask": "moto[server]",
        "airflow.providers.amazon": "apache-airflow-providers-amazon", "s3fs": "s3fs", "boto3": "boto3"}
missing = []
for mod, req in mods.items():
    try:
        found = importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        found = False
    if not found and req not in missing:
        missing.append(req)
print(" ".join(missing))
PY
)
if [ -n "$missing" ]; then
    echo "test-distributed: pip install ${PIP_PACKAGES[*]} (missing: $missing)"
    "$PYTHON" -m pip install --quiet "${PIP_PACKAGES[@]}" || unavailable "pip could not install: $missing"
fi

PYTEST=("$PYTHON" -m pytest tests/distributed -m distributed -p no:cacheprovider -rA "$@")
export OPENAI_FILES_DISTRIBUTED=1
started=$(date +%s)
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null; then
    echo "test-distributed: running in a private network namespace (loopback only)"
    unshare -n sh -c 'ip link set lo up && OPENAI_FILES_DIST_NETNS=1 exec "$@"' sh "${PYTEST[@]}"
    rc=$?
else
    echo "test-distributed: no private network namespace here; log servers are skipped, all else is on 127.0.0.1"
    "${PYTEST[@]}"
    rc=$?
fi
echo "test-distributed: exit $rc after $(( $(date +%s) - started )) s"
exit $rc
