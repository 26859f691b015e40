"""Backfilling a demo quarter, each way, in one run: `nps backfill` through the Airflow stack
(Airflow's own backfill of nps_backfill), through dag.test() (no stack), and for contrast a week
of full nightly runs (what a per-day backfill would repeat 91 times).

    .venv/bin/python bench/bench_backfill.py [--quarter 2025Q1] [--nights 7] [--json FILE]
    make bench-backfill

With ``--years N``: N years of the generator's data (the demo's accounts, the demo's responses per
year) backfilled into one warehouse a quarter at a time, oldest first, each quarter one
`nps backfill --quarter Q --through local`: the time per quarter and how it grows with the history
already in the warehouse.

    .venv/bin/python bench/bench_backfill.py --years 3 [--json FILE]
    make bench-backfill-years

Each scenario starts from an empty scratch database on the server of NPS_WAREHOUSE_URL (created
and dropped here), else on a throw-away embedded PostgreSQL; the demo sources are generated into
.bench/backfill/sources once. The two backfills must leave identical warehouses (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from nps import backfill, warehouse  # noqa: E402
from tests.checksums import differences, table_checksums  # noqa: E402
from tests.stack_helpers import free_port, running_stack  # noqa: E402

NPS = str(Path(sys.executable).with_name("nps"))
OUT = ROOT / ".bench" / "backfill"


def demo_sources() -> Path:
    from nps.demo.generator import PRESETS, generate

    out = OUT / "sources"
    if not (out / "_truth" / "manifest.json").exists():
        generate(out, PRESETS["demo"], progress=True)
    return out


def history_sources(years: int) -> tuple[Path, list[str]]:
    """The generator's data over `years` years (the demo preset's accounts and yearly responses),
    generated once into .bench/backfill/; returns the sources and their quarters ('2025Q1', ...)."""
    from dataclasses import replace

    from nps.demo.generator import PRESETS, generate

    demo = PRESETS["demo"]
    # the last `years` years of whole quarters before today's (the loader refuses future dates)
    today = date.today()
    this_quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    start = date(this_quarter.year - years, this_quarter.month, 1)
    cfg = replace(demo, start=start, quarters=4 * years, responses_target=demo.responses_target * years)
    out = OUT / f"sources-{years}y-from-{start.isoformat()}"
    if not (out / "_truth" / "manifest.json").exists():
        generate(out, cfg, progress=True)
    first = (start.month - 1) // 3
    quarters = [f"{start.year + (first + q) // 4}Q{(first + q) % 4 + 1}" for q in range(cfg.quarters)]
    return out, quarters


def years_of_backfill(years: int) -> dict:
    """Each quarter of `years` years backfilled in turn into one scratch warehouse."""
    sources, quarters = history_sources(years)
    results: dict = {"years": years, "quarters": {}, "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
                     "python": platform.python_version()}
    with warehouse.scratch_database("bench_bf_years") as url, tempfile.TemporaryDirectory(prefix="bench-bf-") as tmp:
        env = {**os.environ, "NPS_SOURCES_DIR": str(sources), "HF_HUB_OFFLINE": "1", warehouse.URL_ENV: url,
               "NPS_DATA_DIR": str(Path(tmp) / "data"), "AIRFLOW_HOME": str(Path(tmp) / "airflow")}
        for i, quarter in enumerate(quarters, 1):
            seconds, _ = timed([NPS, "backfill", "--quarter", quarter, "--through", "local"], env)
            conn = warehouse.connect(url)
            try:
                with conn.cursor() as cur:
                    cur.execute("select count(*) from raw.survey_responses")
                    responses = int(cur.fetchone()[0])
            finally:
                conn.close()
            results["quarters"][quarter] = {"seconds": round(seconds, 1), "responses_in_warehouse": responses}
            print(f"[{i}/{len(quarters)}] {quarter}: {seconds:.1f} s, {responses:,} responses in the warehouse",
                  flush=True)
    per_quarter = [q["seconds"] for q in results["quarters"].values()]
    results["total_seconds"] = round(sum(per_quarter), 1)
    # growth: the last year's quarters against the first year's (each year has the same seasons)
    results["last_year_over_first_year"] = round(sum(per_quarter[-4:]) / sum(per_quarter[:4]), 2)
    return results


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quarter", default="2025Q1")
    parser.add_argument("--nights", type=int, default=7, help="full nightly runs after the quarter, for contrast")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--years", type=int, help="instead: this many years backfilled a quarter at a time")
    args = parser.parse_args(argv)
    if args.years:
        results = years_of_backfill(args.years)
        print(json.dumps(results, indent=2), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        return 0
    start, end = backfill.quarter_range(args.quarter)
    sources = demo_sources()
    results: dict = {"quarter": args.quarter, "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
                     "python": platform.python_version()}
    with warehouse.scratch_database("bench_bf_local") as local_url, \
            warehouse.scratch_database("bench_bf_stack") as stack_url:
        server = os.environ.get(warehouse.URL_ENV) or local_url
        base_env = {**os.environ, "NPS_SOURCES_DIR": str(sources), "HF_HUB_OFFLINE": "1"}
        with tempfile.TemporaryDirectory(prefix="bench-bf-") as tmp:
            tmp_path = Path(tmp)
            env = {**base_env, warehouse.URL_ENV: local_url, "NPS_DATA_DIR": str(tmp_path / "local"),
                   "AIRFLOW_HOME": str(tmp_path / "local" / "airflow"), "NPS_STACK_PORT": str(free_port())}
            seconds, out = timed([NPS, "backfill", "--quarter", args.quarter, "--through", "local"], env)
            results["local_backfill_seconds"] = round(seconds, 1)
            print(out, flush=True)

            with running_stack(tmp_path / "stack", warehouse_url=stack_url, server_url=server,
                               sources=sources) as stack:
                t0 = time.monotonic()
                out = stack.nps("backfill", "--quarter", args.quarter, timeout=7200).stdout
                results["airflow_backfill_seconds"] = round(time.monotonic() - t0, 1)
                print(out, flush=True)
            diff = differences(table_checksums(local_url), table_checksums(stack_url))
            results["backfills_identical"] = not diff
            if diff:
                print(f"the two backfills differ: {diff}", flush=True)

            # contrast: full nightly runs (dbt + GX + publish each) of the days after the quarter
            nights_end = end + timedelta(days=args.nights)
            seconds, _ = timed([NPS, "run", "--start", end.isoformat(), "--end", nights_end.isoformat(),
                                "--by", "day"], env)
            results["nightly_runs"] = args.nights
            results["nightly_seconds_per_run"] = round(seconds / args.nights, 1)
            days = (end - start).days
            results["days_in_quarter"] = days
    print(json.dumps(results, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results["backfills_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
