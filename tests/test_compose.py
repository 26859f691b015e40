"""docker-compose.yml at config level (no Docker engine on the development machines)."""

import yaml

from nps import config


def _compose() -> dict:
    return yaml.safe_load((config.PROJECT_ROOT / "docker-compose.yml").read_text())


def test_stack_has_airflow3_services_and_a_warehouse():
    services = _compose()["services"]
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-init", "airflow-db", "warehouse"):
        assert name in services, name
    env = services["airflow-scheduler"]["environment"]
    assert env["NPS_WAREHOUSE_URL"].startswith("postgresql://")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/nps/dags"


def test_scale_out_profile_runs_celery_with_a_themes_queue():
    services = _compose()["services"]
    assert services["redis"]["profiles"] == ["scale-out"]
    worker = services["airflow-worker-themes"]
    assert worker["profiles"] == ["scale-out"]
    assert "themes" in worker["command"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_image_pins_the_same_airflow_as_requirements():
    dockerfile = (config.PROJECT_ROOT / "Dockerfile").read_text()
    requirements = (config.PROJECT_ROOT / "requirements.txt").read_text()
    assert "apache/airflow:3.3.2-python3.11" in dockerfile
    assert "apache-airflow==3.3.2" in requirements
