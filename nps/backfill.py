"""`nps backfill`: reprocess a historical range the way a data engineer does, through Airflow.

The range is cut into calendar months, one `nps_backfill` run each (docs/operations.md):

- with the stack running (`nps stack start`), through Airflow 3's own backfill (the REST API's
  `POST /api/v2/backfills`): the runs are a backfill in the UI, run one at a time in date order,
  and reprocess months that already ran (`reprocess_behavior=completed`: a backfill after a
  source fix or a model change must redo them). Months whose interval has not ended yet (the
  current one) cannot be part of an Airflow backfill; they follow as one manual run;
- without a stack, the same runs of the same DAG through `dag.test()`.

Each run loads its month day by day and themes it night by night; only the run that reaches the
range's end builds, validates and publishes the marts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from nps import orchestrate, stack

DAG_ID = "nps_backfill"
_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)


class BackfillFailed(RuntimeError):
    """A backfill run failed (or the backfill could not be created)."""


def quarter_range(text: str) -> tuple[date, date]:
    """'2025Q1' / '2025-Q1' -> [2025-01-01, 2025-04-01)."""
    match = _QUARTER.match(text.strip())
    if not match:
        raise ValueError(f"--quarter {text!r} is not a quarter like 2025Q1")
    year, q = int(match.group(1)), int(match.group(2))
    start = date(year, 3 * q - 2, 1)
    end = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1)
    return start, end


@dataclass
class Progress:
    """One line per finished run: done/total, elapsed, ETA."""

    total: int
    echo: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    def finished(self, what: str, state: str, seconds: float) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = self.total - self.done
        eta = f", ETA {_duration(elapsed / self.done * left)}" if left else ""
        self.echo(f"[{self.done}/{self.total}] {what} {state} in {_duration(seconds)} "
                  f"(elapsed {_duration(elapsed)}{eta})")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _iso(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def months(start: date, end: date) -> list[tuple[date, date]]:
    """The range cut at month boundaries: each piece inside one `nps_backfill` month run."""
    return list(orchestrate.windows(start, end, "month"))


def _month_start(day: date) -> date:
    return day.replace(day=1)


def run(start: date, end: date, *, through: str = "auto", echo: Callable[[str], None] = print,
        accept_row_loss: bool = False,
        poll_seconds: float = 5.0) -> dict:
    """Backfill [start, end); `through` = airflow (the running stack), local (dag.test) or auto."""
    pieces = months(start, end)  # a bad range fails here, before anything runs
    if through == "auto":
        through = "airflow" if stack.health() is not None else "local"
    conf = {"backfill_start": _iso(start), "backfill_end": _iso(end), "accept_row_loss": accept_row_loss}
    echo(f"backfill [{start}, {end}): {len(pieces)} run(s) of {DAG_ID}, one per month, through "
         f"{'the Airflow stack at ' + stack.base_url() if through == 'airflow' else 'dag.test()'}")
    t0 = time.monotonic()
    if through == "airflow":
        states = _through_airflow(pieces, conf, echo, poll_seconds)
    elif through == "local":
        states = _locally(pieces, conf, echo)
    else:
        raise ValueError(f"unknown --through {through!r}: airflow, local or auto")
    seconds = round(time.monotonic() - t0, 1)
    summary = {"start": start, "end": end, "through": through, "runs": states, "seconds": seconds}
    failed = [s for s in states if s["state"] != "success"]
    echo(f"backfill [{start}, {end}) done: {len(states)} run(s) succeeded in {_duration(seconds)}; "
         f"run {states[-1]['run_id']} built, validated and published the marts"
         if not failed else
         f"backfill [{start}, {end}) FAILED: {len(failed)} of {len(states)} run(s) failed in "
         f"{_duration(seconds)}")
    if failed:
        first = failed[0]
        raise BackfillFailed(
            f"run {first['run_id']} for [{first['start']}, {first['end']}) ended {first['state']}"
            f"{'; failed tasks: ' + ', '.join(first['failed_tasks']) if first.get('failed_tasks') else ''}"
            f"{chr(10) + first['cause'] if first.get('cause') else ''}.\n"
            f"Every run is idempotent: after fixing the cause, rerun: nps backfill --start {start} --end {end}"
        )
    return summary


def _locally(pieces: list[tuple[date, date]], conf: dict, echo: Callable[[str], None]) -> list[dict]:
    progress = Progress(len(pieces), echo)
    states = []
    for s, e in pieces:
        t0 = time.monotonic()
        outcome = orchestrate.run_window(s, e, dag_id=DAG_ID, conf=conf, raise_on_failure=False,
                                         logical_date=datetime(s.year, s.month, 1, tzinfo=UTC))
        states.append({"run_id": outcome.run_id, "start": s, "end": e, "state": outcome.state,
                       "failed_tasks": outcome.failed_tasks})
        progress.finished(f"[{s}, {e})", outcome.state, time.monotonic() - t0)
        if outcome.state != "success":
            break  # later months build on this one's themes: stop here, resume from it
    return states


def _through_airflow(pieces: list[tuple[date, date]], conf: dict, echo: Callable[[str], None],
                     poll_seconds: float) -> list[dict]:
    api = stack.AirflowAPI()
    api.wait_for_dag(DAG_ID)
    # the tasks of a paused DAG are never queued, backfill or not; paused again once every run has
    # ended (an interrupted `nps backfill` leaves the backfill running in Airflow)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    states = _backfill_runs(api, pieces, conf, echo, poll_seconds)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
    return states


def _backfill_runs(api: stack.AirflowAPI, pieces: list[tuple[date, date]], conf: dict,
                   echo: Callable[[str], None], poll_seconds: float) -> list[dict]:
    now = datetime.now(UTC).date()
    ended = [(s, e) for s, e in pieces if _month_start(s) < _month_start(now)]
    tail = [(s, e) for s, e in pieces if _month_start(s) >= _month_start(now)]
    progress = Progress(len(pieces), echo)
    states: list[dict] = []
    if ended:
        created = datetime.now(UTC) - timedelta(seconds=5)  # clock skew: the API server stamps queued_at
        try:
            backfill = api.post("/api/v2/backfills", {
                "dag_id": DAG_ID, "from_date": _iso(_month_start(ended[0][0])),
                "to_date": _iso(_month_start(ended[-1][0])), "max_active_runs": 1,
                "reprocess_behavior": "completed", "dag_run_conf": conf, "run_backwards": False,
            })
        except stack.StackError as exc:
            if "HTTP 409" in str(exc):
                raise BackfillFailed(f"{exc}\n{_active_backfills(api)}") from None
            raise
        echo(f"Airflow backfill {backfill['id']} created: {len(ended)} run(s), reprocessing completed ones")
        states += _watch(api, {_iso(_month_start(s)): (s, e) for s, e in ended}, progress, poll_seconds,
                         backfill_id=backfill["id"], since=created)
        _wait_completed(api, backfill["id"], poll_seconds)
    if tail and all(s["state"] == "success" for s in states):
        s, e = tail[0]
        run = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {
            "dag_run_id": f"manual__backfill_{s}_{e}_{int(time.time())}", "logical_date": _iso(s),
            "conf": {**conf, "interval_start": _iso(s), "interval_end": _iso(e)},
        })
        echo(f"the current month [{s}, {e}) cannot be in an Airflow backfill yet (its interval has not "
             f"ended): triggered run {run['dag_run_id']}")
        states += _watch(api, {_iso(s): (s, e)}, progress, poll_seconds, run_id=run["dag_run_id"])
    return states


def _wait_completed(api: stack.AirflowAPI, backfill_id: int, poll_seconds: float, timeout: float = 120.0) -> None:
    """The scheduler marks a backfill completed shortly after its last run ends; until then Airflow
    refuses the next backfill of the DAG, so return only once it has."""
    deadline = time.monotonic() + timeout
    while not api.get(f"/api/v2/backfills/{backfill_id}").get("completed_at"):
        if time.monotonic() > deadline:
            raise BackfillFailed(f"Airflow has not marked backfill {backfill_id} completed {timeout:.0f} s after "
                                 "its last run ended: is the scheduler running? (nps stack status)")
        time.sleep(min(poll_seconds, 2.0))


def _active_backfills(api: stack.AirflowAPI) -> str:
    reply = api.get(f"/api/v2/backfills?dag_id={DAG_ID}")
    active = [b for b in reply.get("backfills", []) if not b.get("completed_at")]
    return "\n".join(f"backfill {b['id']} of {b['from_date'][:10]}..{b['to_date'][:10]} (created {b['created_at']}) "
                     "is still running: wait for it, or cancel it in the UI / PUT /api/v2/backfills/{id}/cancel"
                     for b in active) or "another backfill of nps_backfill is running"


def _before(stamp: str | None, since: datetime) -> bool:
    return stamp is None or datetime.fromisoformat(stamp.replace("Z", "+00:00")) < since


def _watch(api: stack.AirflowAPI, expected: dict[str, tuple[date, date]], progress: Progress,
           poll_seconds: float, *, backfill_id: int | None = None, run_id: str | None = None,
           since: datetime | None = None) -> list[dict]:
    """Poll the runs until each has ended; a progress line as each one does."""
    since = since or datetime.min.replace(tzinfo=UTC)
    reported: dict[str, dict] = {}
    while len(reported) < len(expected):
        query = urlencode({"limit": 100, "order_by": "logical_date", "logical_date_gte": min(expected),
                           "logical_date_lte": max(expected)})
        runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns?{query}")["dag_runs"]
        for r in runs:
            key = r.get("logical_date")
            key = datetime.fromisoformat(key.replace("Z", "+00:00")).isoformat() if key else None
            if key not in expected or key in reported:
                continue
            if backfill_id is not None and (r.get("run_type") != "backfill" or _before(r.get("queued_at"), since)):
                continue  # an earlier backfill's run of the same month (the API does not say which)
            if run_id is not None and r["dag_run_id"] != run_id:
                continue
            if r["state"] not in ("success", "failed"):
                continue
            s, e = expected[key]
            failed, cause = [], ""
            if r["state"] == "failed":
                tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{r['dag_run_id']}/taskInstances")["task_instances"]
                failed = [t["task_id"] for t in tis if t["state"] not in ("success", "skipped")]
                first = [t for t in tis if t["state"] == "failed"][:1]
                cause = _failure(api, r["dag_run_id"], first[0]) if first else ""
            seconds = _seconds_between(r.get("start_date"), r.get("end_date"))
            reported[key] = {"run_id": r["dag_run_id"], "start": s, "end": e, "state": r["state"],
                             "failed_tasks": failed, "cause": cause, "seconds": seconds}
            progress.finished(f"[{s}, {e})", r["state"], seconds)
        if any(r["state"] == "failed" for r in reported.values()) and len(reported) < len(expected):
            _stop(api, backfill_id, progress)  # later months build on this one: stop the rest
            break
        if len(reported) < len(expected):
            time.sleep(poll_seconds)
    return [reported[k] for k in sorted(reported)]


def _failure(api: stack.AirflowAPI, run_id: str, ti: dict) -> str:
    """The exception a failed task instance ended with, from its log (Airflow's structured events)."""
    try:
        log = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                      f"{ti['try_number']}?full_content=true")
    except stack.StackError:
        return ""
    causes = [f"{d.get('exc_type')}: {d.get('exc_value')}" for event in log.get("content") or []
              if isinstance(event, dict) for d in event.get("error_detail") or [] if not d.get("is_cause")]
    return f"{ti['task_id']}: {causes[-1]}" if causes else ""


def _stop(api: stack.AirflowAPI, backfill_id: int | None, progress: Progress) -> None:
    """Cancel the backfill after a failed run (its queued runs end failed, never started) and fail
    a run that had already started."""
    if backfill_id is None:
        return
    api.put(f"/api/v2/backfills/{backfill_id}/cancel")
    runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100&state=running")["dag_runs"]
    for r in runs:
        if r.get("run_type") == "backfill":  # one backfill per DAG at a time: this one
            api.patch(f"/api/v2/dags/{DAG_ID}/dagRuns/{r['dag_run_id']}", {"state": "failed"})
    progress.echo(f"stopped: backfill {backfill_id} cancelled after a failed run; the later months did not run")


def _seconds_between(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()
