"""The embedded, throwaway PostgreSQL cluster used when no database URL is configured.

It lives under ``.local/pg`` (or a folder in the temp dir when the unprivileged ``postgres``
user cannot reach the project folder), listens on 127.0.0.1 on a free port, trusts local
connections (it is a throwaway cluster), and holds two databases: ``push`` for the pipeline
and ``airflow`` for Airflow's metadata. PostgreSQL refuses to run as root, so when invoked
as root every server command runs as the ``postgres`` user.

CLI: ``python -m devenv.localdb start|stop|status|url|psql [SQL]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devenv.toolchain import ensure_java, reachable_pg_bin, system_pg_bin, wheel_pg_bin
from jobs.core.config import PROJECT_ROOT, embedded_database_state

SUPERUSER = "push"
PIPELINE_DB = "push"
AIRFLOW_DB = "airflow"
UNPRIVILEGED_USER = "postgres"
# The real binary, not a link on PATH that the unprivileged user might not reach.
_TEST = os.path.realpath(shutil.which("test") or "/usr/bin/test")


def find_pg_bin() -> Path:
    """initdb/pg_ctl/postgres: the system's (see :func:`system_pg_bin`), else the pgserver wheel's."""
    found = system_pg_bin()
    if found is not None:
        return found
    wheel = wheel_pg_bin()
    if wheel is not None:
        return reachable_pg_bin(wheel, _server_user_can_run)
    raise SystemExit(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. Run 'make install' "
        "(it installs the pinned pgserver wheel, which ships them), install them (e.g. 'apt-get install "
        "postgresql'), set PG_BIN to their folder, or set PUSH_DATABASE_URL to an existing database."
    )


def _server_user_can_enter(path: Path) -> bool:
    """Whether the user the server runs as (when invoked as root) can reach and enter or run ``path``."""
    if os.geteuid() != 0:
        return True
    return (
        subprocess.run(["runuser", "-u", UNPRIVILEGED_USER, "--", _TEST, "-x", str(path)], check=False).returncode == 0
    )


def _server_user_can_run(install: Path) -> bool:
    return _server_user_can_enter(install / "bin" / "postgres")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster owned by this project; ``state_dir`` holds its state file."""

    state_dir: Path
    # Off (the default) for tests and the demo: no fsync and no full-page writes, so nothing
    # waits for the disk, but commits stay synchronous: a crash of the server alone (not of the
    # machine) loses no committed transaction, as on a production server. On for benchmarks:
    # PostgreSQL's own defaults, so that a commit costs what it costs there.
    durable: bool = False

    @classmethod
    def default(cls, durable: bool = False) -> EmbeddedPostgres:
        return cls(embedded_database_state().parent, durable)

    # --- state ------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _state(self) -> dict | None:
        if not self.state_file.exists():
            return None
        return json.loads(self.state_file.read_text())

    def url_if_running(self, database: str = PIPELINE_DB) -> str | None:
        state = self._state()
        if state and _port_open(state["port"]):
            return self.url(state["port"], database)
        return None

    @staticmethod
    def url(port: int, database: str = PIPELINE_DB) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{port}/{database}"

    # --- privileges ---------------------------------------------------------------------------
    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _run(self, args: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        if self._as_root():
            args = ["runuser", "-u", UNPRIVILEGED_USER, "--", *args]
        return subprocess.run(args, check=check, text=True, **kwargs)

    def _choose_data_dir(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if _server_user_can_enter(self.state_dir):
            return self.state_dir / "data"
        # The project folder is private to root (e.g. under /root): keep the data in the temp
        # dir, named after the project folder so that each clone gets its own cluster.
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"push-pg-{digest}"

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> str:
        """Start (initialising if needed) the cluster and return the pipeline database URL."""
        state = self._state() or {}
        running = self.url_if_running()
        if running and state.get("durable", False) == self.durable:
            return running
        if running:
            self.stop()  # started with the other durability: restart with this one
        if self._as_root():
            try:
                pwd.getpwnam(UNPRIVILEGED_USER)
            except KeyError:
                raise SystemExit(
                    f"PostgreSQL refuses to run as root and there is no '{UNPRIVILEGED_USER}' "
                    "user to run it as: create one (useradd -r postgres) or run as a normal user."
                ) from None
        pg_bin = find_pg_bin()
        data_dir = Path(state.get("data_dir") or self._choose_data_dir())
        if not (data_dir / "PG_VERSION").exists():
            if data_dir.exists():
                shutil.rmtree(data_dir)
            data_dir.mkdir(parents=True)
            if self._as_root():
                shutil.chown(data_dir, UNPRIVILEGED_USER, UNPRIVILEGED_USER)
            self._run(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                stdout=subprocess.DEVNULL,
            )
        port = _free_port()
        log_file = data_dir / "server.log"
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=200 -c shared_buffers=256MB"
        )
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            stdout=subprocess.DEVNULL,
        )
        self.state_file.write_text(
            json.dumps(
                {
                    "port": port,
                    "url": self.url(port),
                    "data_dir": str(data_dir),
                    "pg_bin": str(pg_bin),
                    "durable": self.durable,
                }
            )
        )
        self._ensure_databases(port)
        return self.url(port)

    @staticmethod
    @contextlib.contextmanager
    def _admin_cursor(port: int):
        """A superuser cursor on the maintenance database, outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def _ensure_databases(self, port: int) -> None:
        with self._admin_cursor(port) as cur:
            for name in (PIPELINE_DB, AIRFLOW_DB):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')

    def recreate_database(self, name: str = PIPELINE_DB) -> None:
        """Drop ``name`` (closing its sessions) and create it empty; the server must be running."""
        with self._admin_cursor(self._state()["port"]) as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        state = self._state()
        if not state:
            return
        pg_ctl = str(Path(state["pg_bin"]) / "pg_ctl")
        # Not running: never started, stopped, or gone with the machine (its pid file left behind).
        if self._run([pg_ctl, "-D", state["data_dir"], "status"], check=False, stdout=subprocess.DEVNULL).returncode:
            return
        self._run([pg_ctl, "-D", state["data_dir"], "-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL)

    def restart(self, mode: str = "immediate") -> None:
        """Restart the running cluster on its port and options; ``immediate`` is a crash.

        Open sessions are cut and their transactions rolled back, as when a production server
        fails over or is restarted under the pipeline (the fault matrix tests use it).
        """
        state = self._state()
        if not state:
            raise RuntimeError(f"no cluster under {self.state_dir} to restart")
        data_dir = state["data_dir"]
        pg_ctl = str(Path(state["pg_bin"]) / "pg_ctl")
        log_file = str(Path(data_dir) / "server.log")
        self._run(
            [pg_ctl, "-D", data_dir, "-l", log_file, "-m", mode, "-w", "-t", "60", "restart"], stdout=subprocess.DEVNULL
        )

    def destroy(self) -> None:
        """Stop the cluster and delete its data (tests use a fresh cluster each session)."""
        state = self._state()
        self.stop()
        if state:
            shutil.rmtree(state["data_dir"], ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def start_sandbox(folder: str = "bench") -> str:
    """Point ``PUSH_LOCAL_DIR`` at ``.local/<folder>``, start its embedded cluster; return the URL.

    Benchmarks run in a sandbox of their own so they never touch the demo's data, on a durable
    cluster (see ``EmbeddedPostgres.durable``). Its pipeline database is created anew every
    time: a benchmark builds its own data, and must measure the schema and functions the
    migrations define now, not those of the checkout that first created the sandbox.
    """
    ensure_java()  # benchmarks start Spark in this process
    os.environ["PUSH_LOCAL_DIR"] = str(PROJECT_ROOT / ".local" / folder)
    os.environ.pop("PUSH_DATABASE_URL", None)
    cluster = EmbeddedPostgres.default(durable=True)
    url = cluster.start()
    cluster.recreate_database(PIPELINE_DB)
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "url", "psql"])
    parser.add_argument("sql", nargs="?", help="with psql: one query to run instead of a shell")
    parser.add_argument("--database", default=PIPELINE_DB)
    args = parser.parse_args(argv)
    cluster = EmbeddedPostgres.default()
    if args.command == "start":
        from jobs.core.db import apply_migrations, make_engine

        url = cluster.start()
        applied = apply_migrations(make_engine(url))
        print(f"PostgreSQL running: {url}" + (f" (applied {len(applied)} migrations)" if applied else ""))
        return 0
    if args.command == "stop":
        cluster.stop()
        print("PostgreSQL stopped")
        return 0
    url = cluster.url_if_running(args.database)
    if args.command == "status":
        print(f"running: {url}" if url else "not running")
        return 0 if url else 1
    if url is None:
        print("The embedded PostgreSQL is not running: start it with 'make db' or 'make demo'.", file=sys.stderr)
        return 1
    if args.command == "url":
        print(url)
        return 0
    psql_url = url.replace("postgresql+psycopg2://", "postgresql://")
    psql = shutil.which("psql") or str(find_pg_bin() / "psql")
    command = [psql, psql_url, "-v", "ON_ERROR_STOP=1"]
    if args.sql:
        command += ["-P", "pager=off", "-c", args.sql]
    os.execvp(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
