"""A mart is a function of its inputs' contents, never of their physical row order.

The incremental intermediates (docs/incremental.md) are written by delete+insert, so where their
rows sit on disk, and so the order a scan or a plan feeds them to an aggregate, depends on what the
table held before and on when autovacuum ran. A double precision sum taken in that order differs in
its last bits from one warehouse to the next: nightly runs and a backfill of the same nights would
publish different numbers. Here every mart is built twice over the same rows, once in the order
the pipeline left the incremental models' rows and once reversed, and must be identical."""

from __future__ import annotations

import pytest

from nps import config, contracts, warehouse
from nps_airflow.dbt import run_dbt
from tests.checksums import table_checksums

pytestmark = pytest.mark.integration

MARTS_PATH = config.DBT_PROJECT_DIR / "models" / "marts"


def _incremental_models() -> list[str]:
    """The models written in place (materialized incremental): their rows have no stable order."""
    models = config.DBT_PROJECT_DIR / "models"
    return sorted(p.stem for p in models.rglob("*.sql") if "materialized='incremental'" in p.read_text())


def _reverse_physical_order(url: str, table: str) -> None:
    """Rewrite the table with the same rows in the reverse of their text order (one transaction)."""
    conn = warehouse.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"create temporary table reordered on commit drop as select * from intermediate.{table}")
            cur.execute(f"delete from intermediate.{table}")
            cur.execute(f"insert into intermediate.{table} select * from reordered order by reordered::text desc")
            cur.execute(f"analyze intermediate.{table}")
    finally:
        conn.close()


def _build_marts(url: str, schema: str, as_of: str, tmp_path) -> dict[str, tuple[int, str]]:
    vars_ = {"marts_schema": schema, "segment_types": list(contracts.SEGMENT_TYPES), "as_of": as_of}
    run_dbt(["run", "--select", "path:models/marts"], url, vars=vars_, target_dir=tmp_path / schema)
    return {name.split(".", 1)[1]: value for name, value in table_checksums(url, (schema,)).items()}


def test_marts_do_not_depend_on_the_physical_order_of_their_inputs(pipeline, tmp_path) -> None:
    url = pipeline[0]
    conn = warehouse.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("select as_of from ops.published_builds order by publish_id desc limit 1")
        as_of = cur.fetchone()[0].isoformat()
    conn.close()
    try:
        as_left = _build_marts(url, "marts_order_as_left", as_of, tmp_path)
        incremental = _incremental_models()
        assert {"int_responses_enriched", "int_segment_strata_collapsed"} <= set(incremental)
        for table in incremental:
            _reverse_physical_order(url, table)
        reversed_ = _build_marts(url, "marts_order_reversed", as_of, tmp_path)
        marts = {p.stem for p in MARTS_PATH.glob("*.sql")}
        assert set(as_left) == marts and as_left["nps_by_segment"][0] > 0
        assert {name: value for name, value in reversed_.items() if value != as_left[name]} == {}
        # and both equal what the pipeline published (but source_coverage.latest_loaded_at, which
        # tests/checksums.py leaves out in marts only)
        published = table_checksums(url, ("marts",))
        assert {name: published[f"marts.{name}"] for name in marts - {"source_coverage"}} == {
            name: value for name, value in as_left.items() if name != "source_coverage"}
    finally:
        conn = warehouse.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute("drop schema if exists marts_order_as_left cascade; "
                        "drop schema if exists marts_order_reversed cascade")
        conn.close()
