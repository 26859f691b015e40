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


def test_compose_and_nps_stack_share_one_settings_file(tmp_path, monkeypatch):
    """deploy/airflow.env is the one home of the settings both deployments share: compose reads it
    as env_file and overrides none of it; `nps stack` exports every value of it unchanged."""
    from nps import stack

    settings = stack.read_settings()
    assert settings, "deploy/airflow.env is empty"
    common = _compose()["x-airflow-common"]
    assert common["env_file"] == ["deploy/airflow.env"]
    services = _compose()["services"]
    airflow_services = [n for n, s in services.items() if s.get("image") == common["image"]]
    assert len(airflow_services) >= 7, airflow_services
    for name in airflow_services:
        service = services[name]
        assert service.get("env_file") == ["deploy/airflow.env"], name
        overridden = set(service.get("environment", {})) & set(settings)
        assert not overridden, f"{name} overrides shared settings {overridden}: change deploy/airflow.env instead"
    for key in settings:  # the environment would win over the file: make sure the test sees the file
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NPS_STACK_HOME", str(tmp_path))
    env = stack.stack_env("celery", warehouse_url="postgresql://u@h/db", metadata="postgresql+psycopg2://u@h/m",
                          broker="redis://127.0.0.1:6379/0")
    assert {k: env[k] for k in settings} == settings
    # what differs per host is computed, never taken from the shared file
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CELERY__BROKER_URL"):
        assert key not in settings and env[key]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert services["airflow-worker-themes"]["command"][4] == settings["NPS_THEMES_QUEUE"]


def test_the_themes_queue_is_the_same_everywhere():
    """The DAG's themes task, the themes worker of compose and of `nps stack` use one queue name."""
    from nps import stack

    queue = stack.read_settings()["NPS_THEMES_QUEUE"]
    names = {s.name: s.args for s in stack.services("celery", {"NPS_THEMES_QUEUE": queue})}
    assert names["worker-themes"][names["worker-themes"].index("--queues") + 1] == queue
    assert names["worker"][names["worker"].index("--queues") + 1] == "default"
