"""Loading throughput: `load_entity` (file connector -> validation -> quarantine -> PII redaction ->
COPY -> window replace -> audit) versus a bare COPY of the same file drops, in the same run.

    .venv/bin/python bench/bench_load.py [--usage-rows 200000] [--responses 20000] [--repeat 3]
    make bench-load

Runs against a scratch database on the server of NPS_WAREHOUSE_URL (created and dropped here;
your data is not touched), else on a throw-away embedded PostgreSQL. Prints rows/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from nps import sources, warehouse  # noqa: E402
from nps.contracts import SPECS  # noqa: E402
from nps_airflow.connectors.file_drops import FileConnector  # noqa: E402
from nps_airflow.load import load_entity  # noqa: E402

START = date(2025, 1, 1)
COMMENTS = [
    "the export is slow and times out", "love the automations, they save hours",
    "billing put the wrong VAT number on the invoice", "", "sync overwrote fields again",
    "support was quick, thanks Jane (jane.doe@example.com)", "call me on +44 20 7946 0958 about the renewal",
    "mobile app crashes on login", "great product, pricey", "n/a",
]


def make_usage(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    accounts = 2000
    days = max(1, rows // accounts)
    acc = np.tile(np.arange(accounts), days)[:rows]
    day = np.repeat(np.arange(days), accounts)[:rows]
    return pd.DataFrame({
        "account_id": [f"A{a:05d}" for a in acc],
        "usage_date": [(START + timedelta(days=int(d))).isoformat() for d in day],
        "active_users": rng.integers(0, 50, rows), "sessions": rng.integers(0, 400, rows),
        "core_events": rng.integers(0, 5000, rows),
    })


def make_responses(rows: int, days: int, rng: np.random.Generator) -> pd.DataFrame:
    base = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    ts = pd.to_datetime(base + rng.integers(0, days * 86400, rows), unit="s", utc=True)
    when = ts.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return pd.DataFrame({
        "response_id": [f"R{i:07d}" for i in range(rows)], "survey_id": "S1",
        "survey_type": rng.choice(["relational", "transactional"], rows),
        "trigger_event": rng.choice(["quarterly", "onboarding", "support_ticket_closed"], rows),
        "account_id": [f"A{a:05d}" for a in rng.integers(0, 2000, rows)],
        "contact_id": [f"C{c:06d}" for c in rng.integers(0, 9000, rows)], "channel": "email",
        "sent_at": when, "responded_at": when, "score": rng.integers(0, 11, rows),
        "comment": rng.choice(COMMENTS, rows), "language": "en",
    })


def write_drops(frame: pd.DataFrame, root: Path, entity: str) -> FileConnector:
    """Daily file drops written through the file connector (as the demo generator does)."""
    source = sources.load(ROOT / "sources.yml", sources_dir=root).entity(entity)
    connector = FileConnector(source)
    column = SPECS[entity].interval_column
    day = frame[column].str.slice(0, 10)
    for value, part in frame.groupby(day, sort=True):
        connector.write(part, value)
    return connector


def bare_copy(conn, entity: str, files: list[Path], indexed: bool = False) -> float:
    """COPY the same files as they are into a scratch table of the same columns (with `indexed`,
    also the raw table's primary key and indexes)."""
    spec = SPECS[entity]
    columns = ", ".join(spec.columns)
    like = "including all" if indexed else "including defaults"
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(f"create temp table _bare (like {spec.table} {like}) on commit drop")
        for path in files:
            with path.open("rb") as fh:
                cur.copy_expert(f"copy _bare ({columns}) from stdin with (format csv, header true)", fh)
    conn.commit()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--usage-rows", type=int, default=200_000)
    parser.add_argument("--responses", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="nps-bench-"))
    with warehouse.scratch_database("nps_bench") as url:
        conn = warehouse.connect(url)
        try:
            results = measure(conn, workdir, args)
        finally:
            conn.close()
    report(results, args.repeat)
    return 0


def measure(conn: object, workdir: Path, args: argparse.Namespace) -> list[tuple]:
    rng = np.random.default_rng(7)
    results = []
    usage = make_usage(args.usage_rows, rng)
    days = usage["usage_date"].nunique()
    responses = make_responses(args.responses, days, rng)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=days)
    for entity, frame in (("usage_daily", usage), ("survey_responses", responses)):
        connector = write_drops(frame, workdir / "sources", entity)
        files = connector.files_for_window(start, end)
        loads, copies, indexed = [], [], []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            result = load_entity(conn, entity, start, end, f"bench{i}", sources_dir=workdir / "sources",
                                 now=datetime(2026, 1, 1, tzinfo=UTC))
            loads.append(time.perf_counter() - t0)
            copies.append(bare_copy(conn, entity, files))
            indexed.append(bare_copy(conn, entity, files, indexed=True))
        assert result.rows_loaded == len(frame), result
        load_s, copy_s = statistics.median(loads), statistics.median(copies)
        results.append((entity, len(frame), len(files), load_s, copy_s, statistics.median(indexed)))
    return results


def report(results: list[tuple], repeat: int) -> None:
    print(f"loading benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU, "
          f"Python {platform.python_version()}, pandas {pd.__version__}, median of {repeat}")
    print("load_entity = rerun of the whole window (read, validate, redact, COPY, replace, audit); bare COPY ="
          " the same files into a scratch table, without / with the raw table's key and indexes")
    print(f"{'entity':18}{'rows':>8}{'files':>6}{'load_entity':>12}{'rows/s':>9}{'bare COPY':>10}{'rows/s':>10}"
          f"{'ratio':>7}{'+indexes':>9}{'rows/s':>10}{'ratio':>7}")
    for entity, rows, files, load_s, copy_s, idx_s in results:
        print(f"{entity:18}{rows:>8}{files:>6}{load_s:>11.2f}s{rows / load_s:>9,.0f}{copy_s:>9.2f}s"
              f"{rows / copy_s:>10,.0f}{load_s / copy_s:>6.1f}x{idx_s:>8.2f}s{rows / idx_s:>10,.0f}"
              f"{load_s / idx_s:>6.1f}x")


if __name__ == "__main__":
    raise SystemExit(main())
