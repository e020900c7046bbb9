"""Real-time triggers: a Spark Structured Streaming job over the landing folder (or Kafka).

Reads ``<landing>/events/`` recursively (the hourly ``date=/hour=`` folders and the ``live/``
drop folder) as a file source, applies the batch cleaner's rules, keeps per-user state for
abandoned carts and browse windows under an event-time watermark, and hands each micro-batch
to :class:`jobs.stream.sink.StreamBatchWriter`, which stores triggers, quarantine and interactions
idempotently and runs the one policy engine (``jobs.notify.plan``) and the relay.

With ``PUSH_STREAM_KAFKA_BOOTSTRAP`` and ``PUSH_STREAM_KAFKA_TOPIC`` set it reads that topic
instead (one JSON event per record) and adds the ``spark-sql-kafka-0-10_2.13`` package to
``spark.jars.packages``.

CLI: ``python -m jobs.stream.job [--trigger-seconds 5] [--checkpoint DIR] [--once]``.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from jobs.core.config import Settings
from jobs.core.db import apply_migrations, make_engine
from jobs.core.spark import get_spark, temporary_conf
from jobs.ingest.reference import ITEM_REFERENCE_SCHEMA, REFERENCE_TABLES, read_items
from jobs.stream.options import StreamOptions, checkpoint_dir, live_dir
from jobs.stream.sink import ProgressRecorder, StreamBatchWriter
from jobs.stream.transforms import detect, file_lines, kafka_lines

log = logging.getLogger(__name__)

QUERY_NAME = "push_stream_triggers"


def kafka_package() -> str:
    """The Kafka connector matching this Spark (Scala 2.13) build."""
    import pyspark

    return f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"


def read_raw_lines(spark: SparkSession, settings: Settings, options: StreamOptions) -> DataFrame:
    """The raw-line stream: the landing folder by default, the Kafka topic when configured."""
    if options.uses_kafka:
        records = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", options.kafka_bootstrap)
            .option("subscribe", options.kafka_topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", options.max_files_per_trigger * 1000)
            .load()
        )
        return kafka_lines(records)
    events = settings.landing_dir / "events"
    live_dir(settings).mkdir(parents=True, exist_ok=True)
    files = (
        spark.readStream.format("text")
        .option("wholetext", "true")
        .option("recursiveFileLookup", "true")
        .option("maxFilesPerTrigger", options.max_files_per_trigger)
        # A file that cannot be read (a corrupt gzip) must not stop the query for good: it is
        # skipped here, and the batch writer records it in push.quarantined_files (the batch
        # cleaner of its landing hour later keeps the readable prefix of a truncated gzip).
        .option("ignoreCorruptFiles", "true")
        .load(str(events))
        .select("value", "_metadata")
    )
    return file_lines(files)


def read_catalogue(spark: SparkSession, settings: Settings) -> DataFrame:
    """The catalogue snapshot (item -> category) for browse windows; empty until one is loaded."""
    if (settings.landing_dir / "reference" / REFERENCE_TABLES["items"][1]).exists():
        return read_items(spark, settings)
    return spark.createDataFrame([], ITEM_REFERENCE_SCHEMA)


def start_stream(
    spark: SparkSession,
    settings: Settings,
    options: StreamOptions,
    checkpoint: Path,
    *,
    once: bool = False,
    relay: bool = True,
) -> StreamingQuery:
    """Build the query and start it (``once``: process what is there now, then stop)."""
    output = detect(
        read_raw_lines(spark, settings, options),
        read_catalogue(spark, settings),
        watermark=timedelta(seconds=options.watermark_seconds),
        delay=timedelta(minutes=settings.cart_abandonment_minutes),
        browse_views=settings.browse_intent_views,
        browse_minutes=settings.browse_intent_minutes,
        max_id_length=settings.max_id_length,
        max_text_length=settings.max_text_length,
    )
    checkpoint.mkdir(parents=True, exist_ok=True)
    writer = (
        output.writeStream.queryName(QUERY_NAME)
        .outputMode("append")
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(StreamBatchWriter(settings, checkpoint, relay=relay, refresh_lists=options.refresh_lists))
    )
    writer = (
        writer.trigger(availableNow=True)
        if once
        else writer.trigger(processingTime=f"{options.trigger_seconds} seconds")
    )
    # The number of state-store partitions is fixed by the checkpoint's first batch; a few (one
    # per core) keep the per-batch task count, and so the latency floor, low on a small machine.
    # The query takes the session's settings when it starts.
    with temporary_conf(spark, {"spark.sql.shuffle.partitions": str(options.state_partitions)}):
        return writer.start()


def configure_spark(settings: Settings, options: StreamOptions) -> SparkSession:
    """The project's session plus what streaming needs (the Kafka package, state store tuning)."""
    if options.uses_kafka:
        # spark.jars.packages must be known when the JVM starts: the one session builder
        # (jobs.core.spark) starts it, so the setting goes in through spark-submit's arguments.
        package = options.kafka_package or kafka_package()
        os.environ["PYSPARK_SUBMIT_ARGS"] = f"--conf spark.jars.packages={package} pyspark-shell"
    spark = get_spark(settings, app_name="push-stream")
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", _rocksdb_or_default(spark))
    return spark


def _rocksdb_or_default(spark: SparkSession) -> str:
    # The in-memory (HDFS-backed) store is faster per batch while state is small; RocksDB keeps
    # memory bounded when it is not (millions of open carts). Fixed when a checkpoint is created.
    provider = os.environ.get("PUSH_STREAM_STATE_STORE", "memory")
    if provider == "rocksdb":
        return "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    return "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trigger-seconds", type=float, default=None, help="micro-batch interval (default 5)")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="checkpoint folder (default <local>/stream/checkpoint)"
    )
    parser.add_argument("--once", action="store_true", help="process the files present now, then exit")
    parser.add_argument("--no-relay", action="store_true", help="decide but leave delivery to the relay task")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    options = StreamOptions.from_env()
    if args.trigger_seconds is not None:
        options = replace(options, trigger_seconds=args.trigger_seconds)
    checkpoint = args.checkpoint or checkpoint_dir(settings, options)
    apply_migrations(make_engine(settings.database_url))
    spark = configure_spark(settings, options)
    spark.streams.addListener(ProgressRecorder(settings))
    query = start_stream(spark, settings, options, checkpoint, once=args.once, relay=not args.no_relay)
    log.info("stream %s running (checkpoint %s)", query.id, checkpoint)
    query.awaitTermination()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
