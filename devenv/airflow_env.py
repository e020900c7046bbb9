"""The one place that configures Airflow for this project (demo, tests, ``make airflow``).

Airflow reads its configuration from ``AIRFLOW__SECTION__KEY`` variables; this module builds
them: AIRFLOW_HOME under ``.local/airflow``, the project's ``dags/``, no example DAGs, the
metadata database in the embedded PostgreSQL (database ``airflow``) unless
``PUSH_AIRFLOW_DATABASE_URL`` is given, and a small LocalExecutor parallelism (Airflow's
default of 32 workers is far too many for a laptop).

CLI: ``python -m devenv.airflow_env airflow dags list`` runs a command in that environment
(after ``airflow db migrate`` when the metadata schema is missing or old), in its own process
group; ``python -m devenv.airflow_env --stop`` stops that whole group (``make down``). When
the command serves the UI (``airflow standalone`` or ``airflow api-server``) it first prints the
URL and the login of Airflow's simple auth manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from devenv.toolchain import ensure_java
from jobs.core.config import PROJECT_ROOT, Settings, resolve_database_url


def airflow_database_url() -> str:
    explicit = os.environ.get("PUSH_AIRFLOW_DATABASE_URL")
    if explicit:
        return explicit
    from devenv.localdb import AIRFLOW_DB, EmbeddedPostgres

    url = EmbeddedPostgres.default().url_if_running(AIRFLOW_DB)
    if url is None:
        raise RuntimeError(
            "Airflow's metadata database is not running: start it with 'make db' or set PUSH_AIRFLOW_DATABASE_URL."
        )
    return url


def airflow_environment(settings: Settings | None = None) -> dict[str, str]:
    """A copy of ``os.environ`` with the project's Airflow and pipeline settings applied."""
    settings = settings or Settings.from_env()
    ensure_java()  # JAVA_HOME for the tasks' Spark when the system's java is missing or too old
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
            # Task runners reach the API server here; derived from the port so that a port
            # other than 8080 works without a second setting.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": env.get(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                f"http://{env.get('AIRFLOW__API__HOST', '127.0.0.1')}:{env.get('AIRFLOW__API__PORT', '8080')}/execution/",
            ),
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


UI_USER = "admin"  # Airflow's default [core] simple_auth_manager_users is admin:admin


def ui_login(env: dict[str, str]) -> tuple[str, str, str]:
    """The UI's URL, user and password (Airflow's simple auth manager).

    The manager keeps its passwords in ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``
    (or ``[core] simple_auth_manager_passwords_file``) and generates one only when the API server
    starts; writing it here first lets the password be shown before the server runs, and keeps it
    across restarts.
    """
    default_file = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password_file = Path(env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or default_file)
    passwords = json.loads(password_file.read_text() or "{}") if password_file.exists() else {}
    if UI_USER not in passwords:
        passwords[UI_USER] = secrets.token_urlsafe(12)
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(json.dumps(passwords) + "\n")
    url = f"http://{env['AIRFLOW__API__HOST']}:{env['AIRFLOW__API__PORT']}"
    return url, UI_USER, passwords[UI_USER]


def _group_file(settings: Settings) -> Path:
    return settings.local_dir / "airflow" / "services.pgid"


def stop_services(settings: Settings | None = None, grace_seconds: float = 10.0) -> bool:
    """Stop a process group started by :func:`run_in_group` (``airflow standalone`` and its children)."""
    settings = settings or Settings.from_env()
    group_file = _group_file(settings)
    if not group_file.exists():
        return False
    pgid = int(group_file.read_text())
    group_file.unlink()
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)  # LocalExecutor workers can outlive a stopped scheduler
    return True


def run_in_group(command: list[str], env: dict[str, str], settings: Settings) -> int:
    """Run ``command`` in its own process group, recorded so that ``make down`` can stop all of it."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    _group_file(settings).write_text(str(process.pid))

    def forward(signum, _frame):
        stop_services(settings)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = process.wait()
    stop_services(settings)
    return code


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if command == ["--stop"]:
        print("Airflow services stopped" if stop_services() else "no Airflow services were running")
        return 0
    if not command:
        print(__doc__)
        return 2
    settings = Settings.from_env()
    env = airflow_environment(settings)
    migrate_metadata(env)
    if {"standalone", "api-server"} & set(command):
        url, user, password = ui_login(env)
        print(f"Airflow UI: {url}  user: {user}  password: {password}  (stop with Ctrl-C or 'make down')", flush=True)
    return run_in_group(command, env, settings)


if __name__ == "__main__":
    raise SystemExit(main())
