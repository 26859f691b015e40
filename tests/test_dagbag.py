"""The DAG folder imports cleanly and nps_nightly is wired as documented."""

from airflow.dag_processing.dagbag import DagBag

from nps import config
from nps.contracts import ENTITIES


def _dag():
    bag = DagBag(dag_folder=str(config.DAGS_DIR))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["nps_nightly"]


def test_nps_nightly_loads_with_data_interval_schedule():
    dag = _dag()
    assert dag is not None
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and "nps_nightly" in dag.doc_md


def test_every_task_has_explicit_retries_and_stage_order():
    dag = _dag()
    ids = set(dag.task_ids)
    assert {f"extract_{e}" for e in ENTITIES} <= ids
    for task in dag.tasks:
        assert task.retries is not None
    themes = dag.get_task("themes")
    assert {f"extract_{e}" for e in ENTITIES} == set(themes.upstream_task_ids)
    assert dag.get_task("dbt_build").upstream_task_ids == {"themes"}
    assert dag.get_task("validate").upstream_task_ids == {"dbt_build"}
    assert dag.get_task("publish").upstream_task_ids == {"validate"}
    assert dag.get_task("report").upstream_task_ids == {"publish"}
    assert dag.get_task("report_html").upstream_task_ids == {"publish"}
    assert dag.get_task("deliver").upstream_task_ids == {"report_html"}


def test_the_plugin_loader_does_not_import_our_modules_as_top_level_modules():
    """Airflow imports every .py under plugins/ as a top-level module named after the file;
    plugins/.airflowignore keeps it from registering plugins/nps_airflow/dbt.py as `dbt` (and
    extract.py as `extract`, ...), which would shadow real packages in the worker process."""
    import sys

    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    before = set(sys.modules)
    plugins, errors = _load_plugins_from_plugin_directory(str(config.PLUGINS_DIR))
    assert errors == {}
    stems = {p.stem for p in config.PLUGINS_DIR.rglob("*.py")}
    assert not (set(sys.modules) - before) & stems


def test_nps_backfill_runs_the_same_tasks_by_month():
    bag = DagBag(dag_folder=str(config.DAGS_DIR))
    nightly, backfill = bag.dags["nps_nightly"], bag.dags["nps_backfill"]
    assert set(backfill.task_ids) == set(nightly.task_ids)
    assert backfill.timetable.expression == "0 0 1 * *"
    assert backfill.catchup is False and backfill.max_active_runs == 1
    assert backfill.get_task("themes").queue == nightly.get_task("themes").queue
