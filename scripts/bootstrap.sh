#!/usr/bin/env bash
# Checks the prerequisites a user must already have, then creates .venv and installs the pins.
# Idempotent: re-installs only when requirements.txt or constraints.txt changed.
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

# --- Java >= 17 (Spark) ---------------------------------------------------------------------
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
command -v "$JAVA" >/dev/null 2>&1 || fail "Java >= 17 is required by Spark. Install it, e.g. 'apt-get install openjdk-17-jre-headless', or set JAVA_HOME."
java_major=$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
[ -n "$java_major" ] && [ "$java_major" -ge 17 ] || fail "Java >= 17 is required by Spark, found '$("$JAVA" -version 2>&1 | head -n1)'. Install openjdk-17 or newer, or set JAVA_HOME."

# --- PostgreSQL server binaries (the embedded database) ------------------------------------
if [ -z "${PUSH_DATABASE_URL:-}" ]; then
  found_pg=""
  for dir in "${PG_BIN:-}" $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)") /usr/lib/postgresql/*/bin; do
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then found_pg=$dir; break; fi
  done
  [ -n "$found_pg" ] || fail "PostgreSQL server binaries (initdb, pg_ctl, postgres) are required for the embedded database. Install them, e.g. 'apt-get install postgresql', set PG_BIN to their folder, or set PUSH_DATABASE_URL to an existing database."
fi

# --- venv + pinned install --------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv || fail "'$PYTHON -m venv' failed: install the venv module (e.g. 'apt-get install python3-venv')."
fi
stamp=.venv/.installed
wanted=$(cat requirements.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "Installing pinned requirements into .venv (first time: a few minutes)"
  start=$(date +%s)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt 2>&1 \
    | grep -v "is neither a file nor a directory" || true
  if ! check=$(.venv/bin/python -c "import airflow, pyspark, surprise, great_expectations, sqlalchemy, psycopg2" 2>&1); then
    echo "$check" | tail -n 20 >&2
    fail "the pinned install did not complete: see the output above."
  fi
  echo "$wanted" > "$stamp"
  echo "Installed in $(( $(date +%s) - start )) s"
fi
