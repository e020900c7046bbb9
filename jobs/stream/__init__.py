"""The real-time path: a Spark Structured Streaming job that turns fresh behaviour into triggers
and hands them to the same policy engine as the batch path (``jobs.notify.plan``).

Modules: ``transforms`` (pure streaming plan: cleaning rules, deduplication, cart state, browse
windows), ``sink`` (the idempotent micro-batch writer and progress metrics), ``job`` (entry point),
``health`` (pure health rules), ``supervisor`` (start-if-not-running and health check for Airflow),
``bench`` (landing-to-decision latency).

Running it: ``make stream`` (foreground, embedded database) or the ``stream_supervisor`` DAG.
On a cluster, set ``PUSH_SPARK_MASTER`` as for the batch jobs and put the checkpoint
(``PUSH_STREAM_CHECKPOINT_DIR``) and the landing folder on storage every executor and the driver
share. With ``PUSH_STREAM_KAFKA_BOOTSTRAP`` and ``PUSH_STREAM_KAFKA_TOPIC`` set the job reads that
topic (one JSON event per record) instead of the landing folder; Spark then needs the Kafka
connector ``org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>`` in
``spark.jars.packages``, which the job adds (override with ``PUSH_STREAM_KAFKA_PACKAGE``).
"""
