"""``python -m nps_airflow.quality --check | --validate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from nps import config

from .checks import check_project
from .runner import validate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nps_airflow.quality",
        description="The Great Expectations audit of the NPS pipeline (suites in expectations/gx/).",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true",
                      help="check the committed GX files against each other, GX and the contract")
    mode.add_argument("--validate", action="store_true", help="run the checkpoints")
    parser.add_argument("--project-root", type=Path, default=None)
    parser.add_argument("--url", default=config.warehouse_url(), help="warehouse URL (default: $NPS_WAREHOUSE_URL)")
    parser.add_argument("--schema", default="marts")
    parser.add_argument("--raw-schema", default="raw")
    parser.add_argument("--suite", action="append", dest="suites")
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.check:
        problems = check_project(args.project_root)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    if not args.url:
        parser.error("--url or NPS_WAREHOUSE_URL is required for --validate")
    report = validate(args.url, schema=args.schema, raw_schema=args.raw_schema, run_id=args.run_id,
                      suites=args.suites, raise_on_failure=False, project_root=args.project_root)
    print(report.summary())
    return 0 if report.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
