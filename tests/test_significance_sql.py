"""The SQL normal distribution behind marts.nps_by_segment.change_p_value (macro
normal_two_sided_p_value: PostgreSQL 15 has no erf) against scipy, on a real PostgreSQL through
dbt itself. The dbt unit tests of nps_by_segment check the p-values' use (Benjamini-Hochberg) on
hand-worked cases; the mart comparison (tests/test_pipeline.py) checks them on generated data."""

from __future__ import annotations

import json

import numpy as np
from scipy.stats import norm

from nps_airflow.dbt import run_dbt


def _sql_p_values(url: str, z: np.ndarray) -> np.ndarray:
    values = ", ".join(repr(float(v)) for v in z)
    sql = (
        "select ordinality, {{ normal_two_sided_p_value('z') }} as p "
        f"from unnest(array[{values}]::double precision[]) with ordinality as t (z, ordinality)"
    )
    output = run_dbt(["show", "--inline", sql, "--output", "json", "--limit", "-1", "--log-format", "json"], url)
    preview = next(
        json.loads(line)["data"]["preview"] for line in output.splitlines() if '"preview"' in line
    )
    rows = sorted(json.loads(preview), key=lambda r: r["ordinality"])
    return np.array([r["p"] for r in rows], dtype=float)


def test_two_sided_p_value_matches_scipy(db_url: str) -> None:
    # every branch of the approximation (|z| / sqrt 2 below 1, 1-8, 8-26, beyond) and both signs
    z = np.concatenate([
        np.linspace(0, 2, 41), np.linspace(2, 12, 51), np.linspace(12, 40, 15), [1.959963984540054, 1e6],
        -np.array([0.3, 1.5, 2.5, 9.0]),
    ])  # fmt: skip
    got = _sql_p_values(db_url, z)
    expected = 2 * norm.sf(np.abs(z))
    assert got[0] == 1.0 and got[-5] == 0.0  # z = 0 and z = 1e6
    assert abs(got[z.tolist().index(1.959963984540054)] - 0.05) < 1e-14
    meaningful = expected > 1e-280
    relative = np.abs(got[meaningful] - expected[meaningful]) / expected[meaningful]
    assert relative.max() < 1e-13, relative.max()
    assert np.all(np.abs(got[~meaningful] - expected[~meaningful]) < 1e-280)
    assert np.all((got >= 0) & (got <= 1))
