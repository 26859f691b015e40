"""The dbt project as a whole, against the warehouse the end-to-end pipeline built: unit tests of the
metric logic, `dbt docs generate` offline, every model and mart column described, every mart with a
contract and a tested primary key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nps import config
from nps_airflow.dbt import DbtError, run_dbt

pytestmark = pytest.mark.integration

MARTS = {
    "nps_by_segment", "detractor_recovery", "theme_recurrence", "detractor_queue", "theme_alerts",
    "account_nps_trajectory", "nps_outcomes", "survey_eligibility", "theme_impact", "passive_movement",
    "promoter_queue",
}  # fmt: skip


@pytest.fixture(scope="module")
def docs(pipeline, tmp_path_factory) -> tuple[dict, dict]:
    """`dbt docs generate` against the pipeline's warehouse: (manifest, catalog)."""
    target = tmp_path_factory.mktemp("dbt_docs")
    run_dbt(["docs", "generate"], pipeline[0], target_dir=target)
    return json.loads((target / "manifest.json").read_text()), json.loads((target / "catalog.json").read_text())


def test_unit_tests_of_the_metric_logic_pass(pipeline, tmp_path) -> None:
    output = run_dbt(["test", "--select", "test_type:unit"], pipeline[0], target_dir=tmp_path)
    results = json.loads((tmp_path / "run_results.json").read_text())["results"]
    assert len(results) >= 25 and {r["status"] for r in results} == {"pass"}, output[-3000:]
    tested = {r["unique_id"].split(".")[2] for r in results}
    assert MARTS <= tested  # every mart's logic has a unit test


def test_docs_generate_offline_and_everything_is_described(docs) -> None:
    manifest, catalog = docs
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "snapshot")}
    assert MARTS <= set(models)
    undocumented = [name for name, n in models.items() if not n["description"].strip()]
    assert not undocumented, f"models without a description: {undocumented}"
    for node_id, node in catalog["nodes"].items():
        name = manifest["nodes"][node_id]["name"]
        described = {c for c, meta in manifest["nodes"][node_id]["columns"].items() if meta["description"].strip()}
        missing = set(node["columns"]) - described
        assert not missing, f"{name}: columns without a description: {sorted(missing)}"
    assert MARTS <= {manifest["nodes"][n]["name"] for n in catalog["nodes"]}


def test_marts_have_a_contract_indexes_and_a_tested_primary_key(docs) -> None:
    """Each mart: contract enforced, a unique index, and a primary key (a `unique` or
    `unique_combination` data test) whose columns cannot be null: a `not_null` contract constraint
    (the table refuses nulls) or a `not_null` data test."""
    manifest, _ = docs
    nodes = manifest["nodes"].values()
    for mart in MARTS:
        node = next(n for n in nodes if n["resource_type"] == "model" and n["name"] == mart)
        assert node["schema"] == "marts" and node["config"]["contract"]["enforced"], mart
        assert any(i.get("unique") for i in node["config"]["indexes"]), mart
        tests = [n for n in nodes if n["resource_type"] == "test" and node["unique_id"] in n["depends_on"]["nodes"]]
        keys, null_tested = [], set()
        for t in tests:
            kind = (t.get("test_metadata") or {}).get("name")
            if kind == "unique":
                keys.append([t["column_name"]])
            elif kind == "unique_combination":
                keys.append(t["test_metadata"]["kwargs"]["combination_of_columns"])
            elif kind == "not_null":
                null_tested.add(t["column_name"])
        assert keys, f"{mart}: no unique or unique_combination test"
        for column in {c for key in keys for c in key}:
            constraints = node["columns"][column].get("constraints", [])
            assert column in null_tested or any(c["type"] == "not_null" for c in constraints), (
                f"{mart}.{column}: primary key column neither a not_null constraint nor a not_null test"
            )


@pytest.mark.parametrize(("model", "settings", "named"), [
    ("int_account_outcomes_counted", {"outcome_horizons_days": [90, 0]}, "outcome_horizons_days"),
    ("account_nps_trajectory", {"trajectory_last_scores": 0}, "trajectory_last_scores"),
])
def test_a_meaningless_setting_is_refused_by_name(pipeline, tmp_path, model, settings, named) -> None:
    """A setting no model can honour fails the compile with its name, not an empty mart or SQL error."""
    with pytest.raises(DbtError, match=f"var {named} must be"):
        run_dbt(["compile", "--select", model], pipeline[0], vars=settings, target_dir=tmp_path)


def test_project_uses_no_hub_packages() -> None:
    project = Path(config.DBT_PROJECT_DIR)
    assert not (project / "packages.yml").exists() and not (project / "dependencies.yml").exists()
