import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker" / "compose.yaml"


def test_compose_declares_the_services_and_shared_volumes():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = set(spec["services"])
    assert {
        "postgres",
        "airflow-api",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "spark-master",
        "spark-worker",
    } <= services
    assert spec["services"]["airflow-scheduler"]["environment"]["PUSH_SPARK_MASTER"].startswith("spark://")
    assert {"data", "pgdata"} <= set(spec["volumes"])


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="no docker compose client on this machine",
)
def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
