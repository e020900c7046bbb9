"""Start the streaming job if it is not running, and check its health (used by the Airflow DAG).

The job runs as its own process group (``start_new_session``) so that the Airflow task that
started it can finish without taking it down, and so that stopping it ends Spark's JVM too. Its
pid is kept in ``<local>/stream/stream.pid`` and its output in ``<local>/stream/stream.log``.

CLI: ``python -m jobs.stream.supervisor {ensure,health,stop}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from jobs.core.config import PROJECT_ROOT, Settings
from jobs.core.db import make_engine
from jobs.stream.health import HealthReport, assess, load_batches, newest_landing
from jobs.stream.options import stream_dir


def pid_file(settings: Settings) -> Path:
    return stream_dir(settings) / "stream.pid"


def running_pid(settings: Settings) -> int | None:
    """The job's pid if the pid file names a live process that is our job, else None."""
    path = pid_file(settings)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"jobs.stream.job" not in cmdline.read_bytes():
        return None  # the pid was reused by something else
    return pid


def ensure_running(settings: Settings, extra_args: list[str] | None = None) -> dict:
    """Start the job unless it runs; return ``{"pid", "started"}``."""
    pid = running_pid(settings)
    if pid is not None:
        return {"pid": pid, "started": False}
    folder = stream_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "stream.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.stream.job", *(extra_args or [])],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file(settings).write_text(str(process.pid))
    return {"pid": process.pid, "started": True}


def stop(settings: Settings) -> bool:
    """Stop the job's process group (SIGTERM); True if there was one."""
    pid = running_pid(settings)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    pid_file(settings).unlink(missing_ok=True)
    return True


def check_health(settings: Settings, now: datetime | None = None) -> HealthReport:
    """Assess the job from its recorded batches, the newest landed file and its process."""
    return assess(
        load_batches(make_engine(settings.database_url)),
        now or datetime.now(UTC),
        newest_landing(settings.landing_dir / "events"),
        running=running_pid(settings) is not None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("ensure", "health", "stop"))
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.action == "ensure":
        print(json.dumps(ensure_running(settings)))
    elif args.action == "stop":
        print(json.dumps({"stopped": stop(settings)}))
    else:
        report = check_health(settings)
        print(report.message())
        return 0 if report.healthy else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
