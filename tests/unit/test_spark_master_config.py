"""Where the Spark master URL comes from: PUSH_SPARK_MASTER, the Airflow connection, local."""

from __future__ import annotations

import pytest

from jobs.core.config import Settings, resolve_spark_master, spark_master_from_connection


@pytest.mark.parametrize(
    ("connection", "master"),
    [
        ("spark://spark-master:7077", "spark://spark-master:7077"),
        ("spark://spark-master", "spark://spark-master:7077"),
        ("spark://yarn", "yarn"),
        ("spark://k8s%3A%2F%2Fhttps%3A%2F%2Fapi.example%3A6443", "k8s://https://api.example:6443"),
        ("spark://local%5B2%5D", "local[2]"),
        ('{"conn_type": "spark", "host": "spark://10.0.0.5", "port": 7077}', "spark://10.0.0.5:7077"),
        ('{"conn_type": "spark", "host": "yarn", "extra": {"deploy-mode": "client"}}', "yarn"),
        ('{"conn_type": "spark", "host": "k8s://https://api.example", "port": 6443}', "k8s://https://api.example:6443"),
    ],
)
def test_an_airflow_spark_connection_names_the_master(connection, master):
    assert spark_master_from_connection(connection) == master


def test_a_connection_without_a_host_is_refused():
    with pytest.raises(ValueError, match="no master host"):
        spark_master_from_connection('{"conn_type": "spark"}')


def test_push_spark_master_wins_over_the_connection_which_wins_over_local(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", "spark://spark-master:7077")
    monkeypatch.setenv("PUSH_SPARK_MASTER", "spark://other:7078")
    assert Settings.from_env().spark_master == "spark://other:7078"
    monkeypatch.delenv("PUSH_SPARK_MASTER")
    assert Settings.from_env().spark_master == "spark://spark-master:7077"
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_DEFAULT")
    assert resolve_spark_master() == "local[2]"


def test_extra_spark_conf_is_key_value_pairs_and_rejects_anything_else():
    from jobs.core.spark import extra_spark_conf

    assert extra_spark_conf("") == {}
    assert extra_spark_conf(" spark.a=1\tspark.b=x=y ") == {"spark.a": "1", "spark.b": "x=y"}
    with pytest.raises(ValueError, match="key=value"):
        extra_spark_conf("spark.a=1 oops")
