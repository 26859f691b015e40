"""The marts as BI uses them, on the warehouse the end-to-end pipeline built: the README's example
queries run and return rows, the typical query (one segment over 8 quarters) is served by an index,
and a build "as of" an earlier date gives exactly the marts the pandas reference computes from the
data known then (what the nightly run of that date published, whatever came later)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from nps import config, warehouse
from nps_airflow.dbt import BUILD_ARGS, run_dbt
from tests.conftest import query
from tests.reference import MART_KEYS, compare_frames
from tests.test_pipeline import expected_mart

pytestmark = pytest.mark.integration


def readme_queries() -> list[str]:
    """The SQL statements of the README's "What you get" section."""
    readme = (config.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What you get", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    statements = [s.strip() for block in blocks for s in block.split(";")]
    return [s for s in statements if s and not all(line.startswith("--") for line in s.splitlines())]


def test_readme_lists_every_mart_and_enough_queries() -> None:
    readme = (config.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What you get", 1)[1].split("\n## ", 1)[0]
    for mart in MART_KEYS:
        assert f"| `marts.{mart}` |" in section, mart
    queries = readme_queries()
    assert len(queries) >= 3
    assert {m for m in MART_KEYS if any(f"marts.{m}" in q for q in queries)} == set(MART_KEYS)


@pytest.mark.parametrize("sql", readme_queries(), ids=lambda s: s.splitlines()[0][3:60])
def test_readme_query_runs_and_returns_rows(pipeline, sql: str) -> None:
    result = query(pipeline[0], sql)
    assert len(result) > 0, sql


def _plan(url: str, sql: str) -> dict:
    return query(url, f"explain (format json) {sql}")["QUERY PLAN"][0][0]["Plan"]


def _nodes(plan: dict) -> list[dict]:
    return [plan, *[n for child in plan.get("Plans", []) for n in _nodes(child)]]


@pytest.mark.parametrize(
    ("table", "sql"),
    [
        ("nps_by_segment",
         "select period_start, nps, margin_of_error, change_exceeds_margin_of_error from marts.nps_by_segment "
         "where segment_type = 'plan' and segment_value = 'enterprise' and period_grain = 'quarter' "
         "order by period_start desc limit 8"),
        ("detractor_recovery",
         "select period_start, follow_up_bucket, detractors, recovery_rate, sla_24h_attainment "
         "from marts.detractor_recovery where segment_type = 'plan' and segment_value = 'enterprise' "
         "and period_grain = 'quarter' order by period_start"),
    ],
)  # fmt: skip
def test_one_segment_over_quarters_is_served_by_an_index(pipeline, table: str, sql: str) -> None:
    """The planner's own choice (no enable_seqscan tricks), on the published, analysed mart."""
    nodes = _nodes(_plan(pipeline[0], sql))
    scans = [n for n in nodes if n.get("Relation Name") == table or n["Node Type"] == "Bitmap Index Scan"]
    assert any("Index" in n["Node Type"] for n in scans), nodes
    assert not any(n["Node Type"] == "Seq Scan" for n in scans), nodes


def test_a_build_as_of_an_earlier_date_reproduces_that_date(pipeline, sources_frames, tmp_path) -> None:
    """The marts as of the end of the second quarter, built now from a warehouse that also holds the
    third one, equal the reference on the data known then. The build goes to its own schemas, so
    the published marts and the live incremental tables are untouched (the incremental models are
    built from scratch there)."""
    url, _, manifest = pipeline
    start = datetime.fromisoformat(str(manifest["start"])).replace(tzinfo=UTC)
    as_of = start.replace(month=start.month + 6)
    schemas = {"marts_schema": "marts_as_of_test", "intermediate_schema": "intermediate_as_of_test"}
    try:
        run_dbt(BUILD_ARGS, url, vars={"as_of": as_of.isoformat(), **schemas}, target_dir=tmp_path)
        for name, keys in MART_KEYS.items():
            actual = query(url, f"select * from marts_as_of_test.{name}")
            compare_frames(actual, expected_mart(name, sources_frames, url, as_of), keys)
            assert len(actual) > 0, name
        assert (query(url, "select max(responded_at) as t from intermediate_as_of_test.int_responses_enriched")["t"][0]
                < as_of)  # fmt: skip
    finally:
        conn = warehouse.connect(url)
        with conn.cursor() as cur:
            cur.execute("drop schema if exists marts_as_of_test cascade; "
                        "drop schema if exists intermediate_as_of_test cascade")
        conn.commit()
        conn.close()
