"""The one SparkSession builder.

The master URL comes from settings (``PUSH_SPARK_MASTER``, default ``local[2]``), so the same
jobs run on a laptop or against a standalone/YARN/Kubernetes master by configuration only.
"""

from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from jobs.core.config import Settings
from jobs.core.toolchain import ensure_java

log = logging.getLogger(__name__)


def get_spark(settings: Settings | None = None, app_name: str = "push-pipeline") -> SparkSession:
    """Return the active session or build one configured for the pipeline."""
    settings = settings or Settings.from_env()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Python workers use this interpreter (and so the project's pinned packages).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    ensure_java()
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
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC -XX:-DontCompileHugeMethods")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    log.info("Spark %s started on %s", session.version, settings.spark_master)
    return session
