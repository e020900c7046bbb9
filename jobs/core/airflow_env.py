"""The one place that configures Airflow for this project (demo, tests, ``make airflow``).

Airflow reads its configuration from ``AIRFLOW__SECTION__KEY`` variables; this module builds
them: AIRFLOW_HOME under ``.local/airflow``, the project's ``dags/``, no example DAGs, the
metadata database in the embedded PostgreSQL (database ``airflow``) unless
``PUSH_AIRFLOW_DATABASE_URL`` is given, and a small LocalExecutor parallelism (Airflow's
default of 32 workers is far too many for a laptop).

CLI: ``python -m jobs.core.airflow_env airflow dags list`` runs a command in that environment
(after ``airflow db migrate`` when the metadata schema is missing or old).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jobs.core.config import PROJECT_ROOT, Settings, resolve_database_url


def airflow_database_url() -> str:
    explicit = os.environ.get("PUSH_AIRFLOW_DATABASE_URL")
    if explicit:
        return explicit
    from jobs.core.localdb import AIRFLOW_DB, EmbeddedPostgres

    url = EmbeddedPostgres.default().url_if_running(AIRFLOW_DB)
    if url is None:
        raise RuntimeError(
            "Airflow's metadata database is not running: start it with 'make db' or set PUSH_AIRFLOW_DATABASE_URL."
        )
    return url


def airflow_environment(settings: Settings | None = None) -> dict[str, str]:
    """A copy of ``os.environ`` with the project's Airflow and pipeline settings applied."""
    settings = settings or Settings.from_env()
    home = settings.local_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_database_url(),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW__API__HOST": env.get("AIRFLOW__API__HOST", "127.0.0.1"),
            "AIRFLOW__API__PORT": env.get("AIRFLOW__API__PORT", "8080"),
            "GX_ANALYTICS_ENABLED": "False",
            "PUSH_DATABASE_URL": resolve_database_url(),
            "PUSH_LOCAL_DIR": str(settings.local_dir),
            # Tasks import the `jobs` package; `airflow standalone` starts `airflow` subprocesses.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
            "PATH": os.pathsep.join([venv_bin, env.get("PATH", "")]),
            "PYSPARK_PYTHON": sys.executable,
        }
    )
    return env


def migrate_metadata(env: dict[str, str]) -> None:
    """Create or upgrade Airflow's metadata schema (a no-op when it is current)."""
    check = subprocess.run(["airflow", "db", "check-migrations", "-t", "0"], env=env, capture_output=True, text=True)
    if check.returncode != 0:
        subprocess.run(["airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print(__doc__)
        return 2
    env = airflow_environment()
    migrate_metadata(env)
    return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
