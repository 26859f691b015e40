"""The run-dependent bounds of the suites (GX suite parameters, ``{"$PARAMETER": name}``).

A suite file asks for a bound by name; this module computes it for the run:

* ``freshest_min`` — the newest response may be at most ``freshness_lag`` older than the run's
  interval end (``expect_column_max_to_be_between`` on ``responded_at``);
* ``min_rows`` — a mart suite's candidate keeps at least (1 - tolerance) of the rows of the mart
  published by the previous run (``expect_table_row_count_to_be_between``): marts that keep their
  history only grow, so a drop means lost data. A mart that may shrink (today's queue, this
  month's alerts) simply has no such expectation in its suite.

A parameter without a value (no interval end, nothing published yet) means "no bound".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from nps.warehouse import check_schema_name

from .suites import DATASOURCE_MARTS, suite_specs


def suite_parameters(
    conn: Any,
    *,
    interval_end: dt.datetime | None,
    published_schema: str = "marts",
    freshness_lag: dt.timedelta = dt.timedelta(days=3),
    row_count_tolerance: float = 0.1,
    project_root: Path | str | None = None,
) -> dict[str, dict[str, Any]]:
    """suite -> {parameter: value} for every suite of the project (psycopg2 ``conn``)."""
    check_schema_name(published_schema)
    values: dict[str, dict[str, Any]] = {}
    with conn.cursor() as cur:
        for spec in suite_specs(project_root).values():
            bounds: dict[str, Any] = {}
            if "freshest_min" in spec.parameters and interval_end is not None:
                bounds["freshest_min"] = interval_end - freshness_lag
            if "min_rows" in spec.parameters and spec.datasource == DATASOURCE_MARTS:
                published = _row_count(cur, published_schema, spec.table)
                if published is not None:
                    bounds["min_rows"] = int(published * (1 - row_count_tolerance))
            values[spec.name] = bounds
    return values


def _row_count(cur: Any, schema: str, table: str) -> int | None:
    """Rows of schema.table, None when it does not exist (nothing published yet)."""
    cur.execute("select to_regclass(%s)", (f"{schema}.{table}",))
    if cur.fetchone()[0] is None:
        return None
    cur.execute(f'select count(*) from {schema}."{table}"')
    return int(cur.fetchone()[0])
