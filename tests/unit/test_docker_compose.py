import json
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from tests.support import ROOT

COMPOSE = ROOT / "docker" / "compose.yaml"
# The Compose Specification's JSON schema (github.com/compose-spec/compose-spec, schema/compose-spec.json,
# Apache-2.0), kept here so that the file is validated on machines without a compose client too.
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"


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


def test_compose_file_follows_the_compose_specification():
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    spec = yaml.safe_load(COMPOSE.read_text())
    assert [error.message for error in validator.iter_errors(spec)] == []
    # The validator does reject a broken file (a service whose ports is not a list).
    broken = {**spec, "services": {**spec["services"], "postgres": {**spec["services"]["postgres"], "ports": 5432}}}
    assert list(validator.iter_errors(broken))


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
