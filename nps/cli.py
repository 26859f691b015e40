"""`nps` command line: demo, run a window, summary, the HTML report, warehouse, theme fitting on a CSV."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import date
from pathlib import Path

from nps import config, contracts, warehouse
from nps.stack import StackError


def _load_manifest(sources: Path) -> dict | None:
    path = sources / "_truth" / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def cmd_generate(args: argparse.Namespace) -> int:
    from nps.demo.generator import PRESETS, generate

    out = Path(args.out or config.sources_dir())
    manifest = generate(out, PRESETS[args.preset], progress=True)
    print(f"wrote {args.preset} sources to {out}: {manifest['counts']}")
    return 0


def _announce_warehouse(url: str) -> None:
    if config.embedded_started():
        print(f"Embedded PostgreSQL (pgserver) running with data in {config.embedded_pgdata()}")
    print(f"Warehouse: {warehouse.redact(url)}\n  connect: {warehouse.psql_hint(url)}")


def _resolve_warehouse() -> str:
    started = not config.warehouse_configured()
    url = warehouse.resolve_url()
    if started:
        os.environ[config.EMBEDDED_STARTED_ENV] = "1"  # for the child processes
    return url


def run_windows(start: date, end: date, by: str, *, accept_row_loss: bool = False) -> None:
    from nps import orchestrate

    windows = list(orchestrate.windows(start, end, by))  # a bad range fails before anything runs
    for i, (s, e) in enumerate(windows, 1):
        t0 = time.monotonic()
        print(f"[{i}/{len(windows)}] nps_nightly for [{s}, {e}) ...", flush=True)
        try:
            orchestrate.run_window(s, e, conf={"accept_row_loss": True} if accept_row_loss else None)
        except orchestrate.WindowBusy as exc:
            raise RunFailed(str(exc)) from None
        except orchestrate.PipelineRunFailed as exc:
            # every window is idempotent: resuming from the failed one redoes nothing twice
            done = f"windows before {s} are done; " if i > 1 else ""
            raise RunFailed(f"{exc}\n{done}after fixing the cause, resume with: nps run --start {s} "
                            f"--end {end} --by {by}{' --accept-row-loss' if accept_row_loss else ''}") from None
        print(f"[{i}/{len(windows)}] done in {time.monotonic() - t0:.0f}s", flush=True)


ROW_LOSS_HELP = ("load re-dropped files even when they hold fewer rows than were loaded from them before "
                 "(a source that really deleted rows); the loss is recorded in raw.load_audit")


class RunFailed(RuntimeError):
    """A window of `nps run` / `nps demo` failed (exit code 1, not a traceback)."""


def cmd_demo(args: argparse.Namespace) -> int:
    from nps.demo.generator import PRESETS

    sources = config.sources_dir()
    manifest = _load_manifest(sources)
    if args.regenerate or manifest is None or manifest.get("preset") != args.preset:
        from nps.demo.generator import generate

        print(f"Generating '{args.preset}' demo sources into {sources} ...", flush=True)
        manifest = generate(sources, PRESETS[args.preset], progress=True)
        manifest["preset"] = args.preset
        (sources / "_truth" / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    url = _resolve_warehouse()
    _announce_warehouse(url)
    start, end = date.fromisoformat(str(manifest["start"])), date.fromisoformat(str(manifest["end"]))
    run_windows(start, end, "quarter")
    return cmd_summary(args)


def cmd_run(args: argparse.Namespace) -> int:
    from nps import orchestrate

    start, end = _parse_day(args.start, "--start"), _parse_day(args.end, "--end")
    next(iter(orchestrate.windows(start, end, args.by)))  # a bad range fails before the warehouse starts
    url = _resolve_warehouse()
    _announce_warehouse(url)
    run_windows(start, end, args.by, accept_row_loss=args.accept_row_loss)
    return cmd_summary(args)


def cmd_backfill(args: argparse.Namespace) -> int:
    from nps import backfill, orchestrate

    if args.quarter:
        if args.start or args.end:
            raise ValueError("give either --quarter or --start/--end, not both")
        start, end = backfill.quarter_range(args.quarter)
    elif args.start and args.end:
        start, end = _parse_day(args.start, "--start"), _parse_day(args.end, "--end")
    else:
        raise ValueError("give --quarter (e.g. 2025Q1) or both --start and --end")
    backfill.months(start, end)  # a bad range fails before the warehouse starts
    if args.through != "airflow":
        url = _resolve_warehouse()
        _announce_warehouse(url)
    try:
        backfill.run(start, end, through=args.through, accept_row_loss=args.accept_row_loss)
    except (backfill.BackfillFailed, orchestrate.WindowBusy, orchestrate.PipelineRunFailed) as exc:
        raise RunFailed(str(exc)) from None
    return 0


def _parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def cmd_summary(args: argparse.Namespace) -> int:
    from nps.summary import render_summary

    url = warehouse.resolve_url()
    conn = warehouse.connect(url)
    try:
        print(render_summary(conn))
    finally:
        conn.close()
    print(f"Marts are in schema 'marts' of {warehouse.redact(url)}\n  connect: {warehouse.psql_hint(url)}")
    from nps.report import latest_path

    if latest_path().exists():  # written by each published run's report_html task
        print(f"Morning report (HTML): {latest_path()}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from nps.report import ReportError, publish_report

    as_of = _parse_day(args.as_of, "--as-of") if args.as_of else None
    try:
        report, written = publish_report(out=Path(args.out) if args.out else None, as_of=as_of)
    except ReportError as exc:
        raise ValueError(str(exc)) from None
    print(f"NPS report as of {report.report_date.isoformat()}:")
    for path in written:
        print(f"  {path}")
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    if args.action == "stop":
        stopped = warehouse.stop_embedded()
        print("embedded warehouse stopped" if stopped else "embedded warehouse was not running")
        return 0
    url = _resolve_warehouse()
    _announce_warehouse(url)
    return 0


def cmd_sources_check(args: argparse.Namespace) -> int:
    from nps import sources
    from nps.times import parse_when
    from nps_airflow.extract import check_sources

    report = check_sources(parse_when(args.start), parse_when(args.end), args.entity or None)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    for row in [] if args.json else report:
        if "error" in row:
            print(f"{row['entity']:<17} ERROR  {row['error']}")
            continue
        if row.get("not_configured"):
            print(f"{row['entity']:<17} ok    {row['location']} (optional); without it:")
            for mart, _, effect in sources.source_needs(row["entity"]):
                print(f"{'':<23}{mart}: {effect}")
            continue
        flag = "ok   " if row["ok"] else "FAIL "
        print(f"{row['entity']:<17} {flag} {row['connector']}/{row['mode']} {row['units']} unit(s) from "
              f"{row['location']}\n{'':<23}read {row['rows_read']}, would load {row['rows_to_load']}, "
              f"quarantine {row['rows_to_quarantine']} ({row['quarantine_share']:.1%}, max "
              f"{row['max_quarantine_share']:.1%}), exact duplicates {row['duplicates_dropped']}")
        if row["rules"]:
            print(f"{'':<23}rules: " + ", ".join(f"{k} x{v}" for k, v in row["rules"].items()))
        if row.get("excluded"):
            print(f"{'':<23}excluded, not answers: " + ", ".join(f"{k} x{v}" for k, v in row["excluded"].items()))
        for warning in row.get("warnings") or []:
            print(f"{'':<23}WARNING {warning}")
        if row["extra_columns"]:
            print(f"{'':<23}extra columns (kept in extras): {', '.join(row['extra_columns'])}")
    return 0 if all(row.get("ok") for row in report) else 1


def cmd_stack(args: argparse.Namespace) -> int:
    from nps import stack

    if args.action == "start":
        state = stack.start(args.executor)
        h = state["health"]
        print(f"Airflow is up at {stack.base_url()} (executor {state['executor']}; scheduler "
              f"{h['scheduler']['status']}); log in as {stack.ADMIN} with the password in {stack.passwords_file()}")
        print(f"  AIRFLOW_HOME={stack.airflow_home()}  (task logs in its logs/; "
              f"process logs in {stack.home() / 'logs'})")
        print(f"  warehouse: {state['warehouse']}")
        return 0
    if args.action == "stop":
        stopped = stack.stop()
        print("stopped: " + ", ".join(stopped) if stopped else "the stack was not running")
        return 0
    report = stack.status()
    services = report["services"]
    if not services:
        print("the stack is not running (nps stack start)")
        return 1
    for name, alive in services.items():
        print(f"  {name:<14} {'running' if alive else 'STOPPED'}")
    h = report["health"]
    if h is None:
        print(f"  api-server at {stack.base_url()} does not answer")
    else:
        print("  health: " + ", ".join(f"{k} {v.get('status')}" for k, v in h.items() if isinstance(v, dict)))
    print(f"  executor {report['executor']}, AIRFLOW_HOME={report['airflow_home']}, warehouse {report['warehouse']}")
    return 0 if all(services.values()) and stack._healthy(h, ("metadatabase", "scheduler")) else 1


def cmd_themes_fit(args: argparse.Namespace) -> int:
    from nlp.cli import themes_fit

    themes_fit(args.input, args.text_column, args.out, model=args.model, encoding=args.encoding,
               delimiter=args.delimiter, header_rows=args.header_rows, encoding_errors=args.encoding_errors)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nps", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate demo sources and run nps_nightly over them, quarter by quarter")
    p.add_argument("--preset", default="demo", choices=["demo", "small"])
    p.add_argument("--regenerate", action="store_true", help="rewrite the demo sources even if present")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("generate", help="write the demo source file drops")
    p.add_argument("--preset", default="demo", choices=["demo", "small"])
    p.add_argument("--out", help="folder (default: data/sources)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run nps_nightly (through Airflow) over a date range")
    p.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--end", required=True, help="day after the last one, YYYY-MM-DD")
    p.add_argument("--by", choices=["day", "month", "quarter", "whole"], default="quarter",
                   help="one run per calendar day, month or quarter (default), or one for the whole range")
    p.add_argument("--accept-row-loss", action="store_true", help=ROW_LOSS_HELP)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="reprocess a historical range through Airflow, a month per run")
    p.add_argument("--quarter", help="a calendar quarter, e.g. 2025Q1")
    p.add_argument("--start", help="first day, YYYY-MM-DD")
    p.add_argument("--end", help="day after the last one, YYYY-MM-DD")
    p.add_argument("--through", choices=["auto", "airflow", "local"], default="auto",
                   help="airflow: the running stack's own backfill; local: dag.test(); auto (default): "
                        "airflow when `nps stack` is up")
    p.add_argument("--accept-row-loss", action="store_true", help=ROW_LOSS_HELP)
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("summary", help="print the summary of the current marts")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("report", help="write the HTML morning report of the current marts")
    p.add_argument("--out", help="the file (default: data/reports/latest.html, or only the dated copy for "
                                 "--as-of an earlier day); a dated copy data/reports/report-<date>.html is "
                                 "always written")
    p.add_argument("--as-of", dest="as_of", help="an earlier day, YYYY-MM-DD: the periods that start on or "
                                                 "before it (default: the day the marts cover up to)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("warehouse", help="show (starting if needed) or stop the embedded warehouse")
    p.add_argument("action", choices=["url", "stop"])
    p.set_defaults(func=cmd_warehouse)

    p = sub.add_parser("stack", help="Airflow as a production-shaped set of local processes (no Docker)")
    p.add_argument("action", choices=["start", "status", "stop"])
    p.add_argument("--executor", choices=["local", "celery"], default="local",
                   help="LocalExecutor (default) or CeleryExecutor with Redis and two workers (start only)")
    p.set_defaults(func=cmd_stack)

    src = sub.add_parser("sources", help="the configured sources (sources.yml / NPS_SOURCES_CONFIG)")
    src_sub = src.add_subparsers(dest="sources_command", required=True)
    p = src_sub.add_parser("check", help="dry run: what a load of the window would read, load and quarantine")
    p.add_argument("--start", required=True, help="window start, YYYY-MM-DD[THH:MM] (UTC)")
    p.add_argument("--end", required=True, help="window end (exclusive)")
    p.add_argument("--entity", action="append", choices=list(contracts.ENTITIES),
                   help="only this entity (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_sources_check)

    themes = sub.add_parser("themes", help="the theme engine")
    themes_sub = themes.add_subparsers(dest="themes_command", required=True)
    p = themes_sub.add_parser("fit", help="cluster the comments of any CSV into themes")
    p.add_argument("input", type=Path)
    p.add_argument("--text-column", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default=None, help="sentence-transformers model name or path")
    p.add_argument("--encoding", default="utf-8-sig", help="file encoding (default UTF-8, BOM or not)")
    p.add_argument("--encoding-errors", choices=("skip-row", "replace", "fail"), default=None,
                   help="bytes not valid in the encoding: skip their rows (counted, their lines listed on stderr), "
                        "replace them by U+FFFD, or fail; default: skip while at most 1%% of rows, else fail")
    p.add_argument("--delimiter", default=None, help="field delimiter (default: sniffed from , ; tab |)")
    p.add_argument("--header-rows", type=int, default=None,
                   help="rows before the data, header included (default 1; 3 for a Qualtrics export, detected)")
    p.set_defaults(func=cmd_themes_fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return args.func(args)
    except (warehouse.WarehouseError, ValueError, FileNotFoundError, StackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
