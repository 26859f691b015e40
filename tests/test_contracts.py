"""nps/contracts.py is the one home of the contract: the docs, the raw tables and dbt follow it, and
one change in it reaches the loader, the source settings, the quality gate and dbt's vars."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from nps import contracts
from nps.contracts import DATE, INT, NUMERIC, SCORE, SPECS, TEXT, TIMESTAMP

REPO = Path(__file__).resolve().parent.parent
DOCS = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- docs/contracts.md


def _section_1_table() -> dict[str, tuple[list[str], dict[str, list[str]], str]]:
    """entity -> (columns, {column: the backticked values its note lists}, interval column)."""
    section = DOCS[DOCS.index("## 1."):DOCS.index("## 2.")]
    table: dict[str, tuple[list[str], dict[str, list[str]], str]] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `(\w+)` \| (.+) \| (\w+) \|", line.strip())
        if not match:
            continue
        entity, cells, interval = match.groups()
        columns, values = [], {}
        for cell in re.split(r",\s*(?![^(]*\))", cells):  # commas outside parentheses
            name = cell.split("(")[0].strip()
            columns.append(name)
            note = re.search(r"\((.*)\)", cell)
            if note and "`" in note.group(1):
                values[name] = re.findall(r"`([^`]+)`", note.group(1))
        table[entity] = (columns, values, interval)
    return table


def test_docs_list_exactly_the_contract_columns_per_entity():
    table = _section_1_table()
    assert list(table) == list(SPECS)
    for entity, spec in SPECS.items():
        columns, values, interval = table[entity]
        assert columns == list(spec.columns), entity
        assert interval == spec.interval_column, entity
        assert values == {c: list(v) for c, v in spec.enums.items()}, entity
    assert f"score ({contracts.SCORE_MIN}-{contracts.SCORE_MAX})" in DOCS


def test_docs_name_each_raw_table_with_its_key():
    section = DOCS[DOCS.index("## 2."):DOCS.index("## 3.")]
    for spec in SPECS.values():
        key = spec.key[0] if len(spec.key) == 1 else f"({', '.join(spec.key)})"
        assert f"- `{spec.table}` — PK `{key}`" in section, spec.table


def test_docs_list_exactly_the_contract_segment_types():
    bullet = next(b for b in DOCS.split("\n- ") if b.startswith("Segment types"))
    listed = re.findall(r"`(\w+)`", bullet[:bullet.index("null ->")])
    assert [t for t in listed if t != "all"] == list(contracts.SEGMENT_TYPES)


# ---------------------------------------------------------------- dbt


def test_dbt_segment_types_are_the_contracts():
    """dbt_project.yml's `segment_types` var (the default of a bare `dbt build`; the pipeline passes
    the contract's) and any list still written in the macros say the same as the contract."""
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text())
    if "segment_types" in project["vars"]:
        assert tuple(project["vars"]["segment_types"]) == contracts.SEGMENT_TYPES
    macro = (REPO / "dbt_project" / "macros" / "nps_metrics.sql").read_text()
    written = re.search(r"macro segment_types\(\).*?return\(\[(.*?)\]\)", macro, re.DOTALL)
    if written:
        assert tuple(re.findall(r"'(\w+)'", written.group(1))) == contracts.SEGMENT_TYPES


def test_the_pipeline_passes_the_contract_segment_types_to_dbt():
    from nps_airflow.dbt import build_vars

    assert build_vars("marts_candidate")["segment_types"] == list(contracts.SEGMENT_TYPES)


# The rules about one row are dbt tests (the gate audits the build as a whole); where such a rule
# uses a vocabulary or a range of the contract, the model's YAML must say what the contract says.
_DBT_VOCABULARIES = {
    ("staging/survey/stg_survey__responses", "survey_type"): contracts.SURVEY_TYPES,
    ("marts/nps_by_segment", "period_grain"): contracts.PERIOD_GRAINS,
    ("marts/detractor_recovery", "period_grain"): contracts.PERIOD_GRAINS,
    ("marts/detractor_recovery", "follow_up_bucket"): (*contracts.FOLLOW_UP_BUCKETS, contracts.NO_FOLLOW_UP_DATA),
    ("marts/theme_recurrence", "status"): contracts.THEME_STATUSES,
    ("marts/detractor_queue", "priority_quadrant"): contracts.PRIORITY_QUADRANTS,
    ("marts/account_nps_trajectory", "last_nps_category"): contracts.NPS_CATEGORIES,
    ("marts/account_nps_trajectory", "trend"): contracts.TRENDS,
    ("marts/nps_outcomes", "nps_category"): contracts.NPS_CATEGORIES,
}
_DBT_RANGES = {
    ("staging/survey/stg_survey__responses", "score"): (contracts.SCORE_MIN, contracts.SCORE_MAX),
    ("marts/account_nps_trajectory", "last_score"): (contracts.SCORE_MIN, contracts.SCORE_MAX),
    ("marts/account_nps_trajectory", "previous_score"): (contracts.SCORE_MIN, contracts.SCORE_MAX),
    ("marts/detractor_queue", "score"): (contracts.SCORE_MIN, contracts.DETRACTOR_MAX_SCORE),
}


def _column_tests(model: str, column: str, test: str) -> list[dict]:
    """The arguments of each `test` on the column in dbt_project/models/<model>.yml."""
    doc = yaml.safe_load((REPO / "dbt_project" / "models" / f"{model}.yml").read_text())
    [spec] = [c for c in doc["models"][0]["columns"] if c["name"] == column]
    return [t[test]["arguments"] for t in spec.get("data_tests", []) if isinstance(t, dict) and test in t]


def test_dbt_tests_use_the_contract_vocabularies_and_ranges():
    for (model, column), values in _DBT_VOCABULARIES.items():
        accepted = [sorted(args["values"]) for args in _column_tests(model, column, "accepted_values")]
        assert accepted == [sorted(values)], (model, column)
    for (model, column), (low, high) in _DBT_RANGES.items():
        assert _column_tests(model, column, "within_range") == [{"min_value": low, "max_value": high}], (model, column)


# ---------------------------------------------------------------- the raw tables (nps/sql/warehouse.sql)

SQL_TYPES = {TEXT: "text", TIMESTAMP: "timestamp with time zone", DATE: "date", INT: "integer",
             SCORE: "smallint", NUMERIC: "numeric"}
LOADER_COLUMNS = ["extras", "_run_id", "_source_file", "_loaded_at"]


def test_raw_tables_are_the_contract(db_conn):
    with db_conn.cursor() as cur:
        for spec in SPECS.values():
            schema, table = spec.table.split(".")
            cur.execute("select column_name, data_type, is_nullable = 'NO' from information_schema.columns"
                        " where table_schema = %s and table_name = %s order by ordinal_position", (schema, table))
            rows = cur.fetchall()
            assert [r[0] for r in rows] == [*spec.columns, *LOADER_COLUMNS], spec.table
            kinds = {name: kind for name, kind, _ in rows}
            assert {c: kinds[c] for c in spec.columns} == {c: SQL_TYPES[k] for c, k in spec.columns.items()}
            not_null = {name for name, _, required in rows if required} - {"_loaded_at"}
            assert not_null == set(spec.required) | set(spec.key), spec.table
            cur.execute("select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid"
                        " and a.attnum = any(i.indkey) where i.indrelid = %s::regclass and i.indisprimary",
                        (spec.table,))
            assert {r[0] for r in cur.fetchall()} == set(spec.key), spec.table
        cur.execute("select pg_get_constraintdef(oid) from pg_constraint"
                    " where conrelid = 'raw.survey_responses'::regclass and contype = 'c'")
        checks = " ".join(r[0] for r in cur.fetchall())
    assert f">= {contracts.SCORE_MIN}" in checks and f"<= {contracts.SCORE_MAX}" in checks


# ---------------------------------------------------------------- one change reaches every reader

# The contract changed before anything reads it (as an edit of nps/contracts.py would): a tolerance
# of 2 h instead of 24 h and one more segment type. Each reader then reports what it does.
_CHANGED_CONTRACT = r"""
import json
from datetime import UTC, datetime, timedelta

import nps.contracts as c

c.FUTURE_TOLERANCE_HOURS = 2.0
c.SEGMENT_TYPES = (*c.SEGMENT_TYPES, "contract_probe")

import pandas as pd

from nps import config, sources
from nps_airflow import dbt, extract, quality

now = datetime(2025, 6, 1, 12, tzinfo=UTC)
spec = c.SPECS["survey_responses"]
row = {column: "" for column in spec.columns}
row.update(response_id="R1", account_id="A1", score="9",
           responded_at=(now + timedelta(hours=3)).isoformat())
_, quarantined = extract.validate(pd.DataFrame([row]), spec, config.LoadSettings(), now)
try:
    sources.parse({"entities": {"survey_responses": {"path": "x/*.csv", "future_tolerance_hours": 3}}})
    refused = ""
except sources.SourceConfigError as exc:
    refused = str(exc)
print(json.dumps({
    "loader_rules": list(quarantined["rule"]),
    "default_tolerance": sources.EntitySource("survey_responses", "file", {}).future_tolerance_hours,
    "larger_tolerance_refused": refused,
    "gate_problems": quality.check_project(load_with_gx=False),
    "dbt_segment_types": dbt.build_vars("marts_candidate")["segment_types"],
}))
"""


def test_one_change_in_the_contract_reaches_its_readers():
    out = subprocess.run([sys.executable, "-c", _CHANGED_CONTRACT], capture_output=True, text=True, check=True,
                         cwd=REPO)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["loader_rules"] == ["future_responded_at"]  # 3 h ahead: within 24 h, beyond 2 h
    assert seen["default_tolerance"] == 2.0
    assert "future_tolerance_hours must be in [0, 2]" in seen["larger_tolerance_refused"]
    changed = [*contracts.SEGMENT_TYPES, "contract_probe"]
    assert seen["dbt_segment_types"] == changed
    # the gate's suites are files a person edits: the check names the two that must follow
    by_segment, raw = sorted(seen["gate_problems"])
    assert raw.startswith("gx/expectations/raw_survey_responses.json") and "'2 hours'" in raw
    assert by_segment.startswith("gx/expectations/marts_nps_by_segment.json") and "contract_probe" in by_segment
    # ... and the docs check above would now fail until docs/contracts.md lists the new type
    assert re.findall(r"`(\w+)`", next(b for b in DOCS.split("\n- ") if b.startswith("Segment types"))
                      ).count("contract_probe") == 0


def test_the_loader_and_the_gate_share_the_future_tolerance():
    """The bug this contract fixed: 24 h in the loader, 1 h in the gate, so a row 2-24 h ahead
    loaded and then failed the night."""
    from nps import config, sources
    from nps_airflow.quality import checks, suites

    assert config.LoadSettings().future_tolerance_hours == contracts.FUTURE_TOLERANCE_HOURS
    source = sources.EntitySource("survey_responses", "file", {})
    assert source.future_tolerance_hours == contracts.FUTURE_TOLERANCE_HOURS
    assert checks.contract_problems(suites.suite_files()) == []
    raw = json.dumps(suites.suite_files()["raw_survey_responses"])
    assert f"now() + interval '{contracts.FUTURE_TOLERANCE_HOURS:g} hours'" in raw
