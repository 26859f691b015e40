"""The morning report: one self-contained HTML page rendered from the published marts.

`nps report` and the DAG's `report_html` task (after publish) write it. Charts are plotly figures;
plotly.js is inlined once in the page's head, so the file opens with no network request (no
external script, stylesheet, font or image). Every number comes from `marts.*` as it is: the
charts' data and a JSON copy of each section's rows (`<script type="application/json"
id="nps-report-data">`) carry the marts' values unrounded; only the visible text rounds.

**As of.** By default the report shows the marts as published, dated the last day they cover (the
day before their `as_of`, which is an exclusive bound). With `as_of=DATE` (`nps report --as-of`)
it shows what the same marts say up to that day: the periods (months, quarters) that start on or
before DATE, "the latest quarter" and "this month" being the ones that hold DATE. A period that was
still running on DATE shows its numbers as published (the whole period known now), not as they
stood on DATE. The action queues are the state at the marts' `as_of` and cannot be rolled back: an
earlier report says so instead of showing today's queues.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nps import config
from nps.report_parts import (
    CSS,
    Figures,
    esc,
    fmt,
    heatmap_figure,
    html_table,
    impact_figure,
    nowrap,
    pct,
    quarter_label,
    recovery_figure,
    segment_flag,
    segments_figure,
    signed,
    sla_figure,
    trend_figure,
)

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

DATA_ELEMENT_ID = "nps-report-data"
LATEST_NAME = "latest.html"
QUEUE_TOP = 10
IMPACT_TOP = 15
BUCKETS = ("within_24h", "within_48h", "later", "never", "no_follow_up_data")


class ReportError(RuntimeError):
    """The marts cannot give a report (none published yet, or an as-of date after them)."""


def reports_dir() -> Path:
    """`data/reports/` under the data dir (NPS_DATA_DIR): the newest report and the dated copies."""
    return config.data_dir() / "reports"


def latest_path() -> Path:
    """The stable path of the newest report."""
    return reports_dir() / LATEST_NAME


def dated_path(day: date) -> Path:
    return reports_dir() / f"report-{day.isoformat()}.html"


@dataclass
class Report:
    """A rendered report: the page, the marts' `as_of` and the day the report is as of."""

    html: str
    marts_as_of: datetime | None
    report_date: date
    is_current: bool
    data: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ queries

MARTS_AS_OF = """
    select coalesce(
        (select as_of from ops.published_builds order by publish_id desc limit 1),
        (select max(as_of) from marts.detractor_queue),
        (select max(as_of) from marts.promoter_queue)
    )
"""

LAST_MONTH = "select max(period_start) from marts.nps_by_segment where period_grain = 'month'"

NPS_TREND = """
    select period_grain, period_start, segment_type, segment_value, responses, nps, margin_of_error,
           below_min_n
    from marts.nps_by_segment
    where segment_type in ('overall', 'plan') and period_start <= %(day)s
    order by period_grain, segment_type, segment_value, period_start
"""

SEGMENTS = """
    select period_start, segment_type, segment_value, responses, nps, margin_of_error, below_min_n,
           previous_nps, nps_change, change_margin_of_error, change_exceeds_margin_of_error,
           change_p_value, change_is_significant
    from marts.nps_by_segment
    where period_grain = 'quarter' and period_start = %(quarter)s
    order by segment_type = 'overall' desc, segment_type, segment_value
"""

RECOVERY = """
    select period_start, follow_up_bucket, detractors, with_next_response, recovered, fully_recovered,
           awaiting_next, lost_to_churn, recovery_rate, full_recovery_rate, median_hours_to_first_follow_up,
           sla_24h_attainment, sla_48h_attainment
    from marts.detractor_recovery
    where period_grain = 'quarter' and segment_type = 'overall' and period_start <= %(day)s
    order by period_start,
             array_position(array['within_24h', 'within_48h', 'later', 'never', 'no_follow_up_data'],
                             follow_up_bucket)
"""

RECURRENCE = """
    select theme_id, theme_label, quarter_start, mentions, detractor_mentions, status
    from marts.theme_recurrence
    where theme_level = 'theme' and not is_no_feedback and quarter_start <= %(day)s
    order by theme_id, quarter_start
"""

ALERTS = """
    select month_start, theme_id, theme_level, theme_label, parent_theme_label, mentions, detractor_mentions,
           detractor_share, previous_month_detractor_mentions, is_new_alert, accounts_affected, arr_at_risk
    from marts.theme_alerts
    where month_start = %(month)s
    order by detractor_mentions desc, theme_level, theme_id
"""

DETRACTOR_QUEUE = """
    select queue_position, response_id, account_name, plan, account_arr, account_owner, score, theme_label,
           priority_quadrant, is_sla_breached, hours_open, comment
    from marts.detractor_queue
    order by queue_position
    limit %(top)s
"""

PROMOTER_QUEUE = """
    select queue_position, response_id, account_name, plan, account_arr, account_owner, score, theme_label,
           days_since_response, last_asked_at, comment
    from marts.promoter_queue
    order by queue_position
    limit %(top)s
"""

IMPACT = """
    select quarter_start, theme_id, theme_label, respondents, mentioners, detractor_mentioners, mention_share,
           segment_nps, nps_mentioners, nps_non_mentioners, nps_difference, nps_points_at_stake, detractor_arr,
           priority_quadrant
    from marts.theme_impact
    where theme_level = 'theme' and segment_type = 'overall' and not is_no_feedback
      and quarter_start = %(quarter)s
    order by nps_points_at_stake desc, theme_id
    limit %(top)s
"""


QUEUE_STATE = """
    select 'detractor' as queue, response_id, is_sla_breached from marts.detractor_queue
    union all
    select 'promoter', response_id, false from marts.promoter_queue
"""

PREVIOUS_SNAPSHOT = """
    select report_date, marts_as_of, facts
    from ops.report_snapshots
    where marts_as_of < %(as_of)s
    order by marts_as_of desc
    limit 1
"""

SAVE_SNAPSHOT = """
    insert into ops.report_snapshots (marts_as_of, report_date, facts)
    values (%(as_of)s, %(day)s, %(facts)s)
    on conflict (marts_as_of) do update set report_date = excluded.report_date, facts = excluded.facts,
        rendered_at = now()
"""

# the detractors delivered to their owners past the SLA, and their first follow-up by the marts' own
# rule (int_detractors_followed_up: a CRM activity linked to the response or on its account), read
# only when that build is the published one
FOLLOWED_UP = """
    select d.payload ->> 'response_id' as response_id, d.payload ->> 'account_name' as account_name,
           d.payload ->> 'account_owner' as account_owner, (d.payload ->> 'responded_at')::timestamptz as responded_at,
           d.channel, d.target, d.sent_at, f.first_follow_up_at
    from ops.delivery_log as d
    left join intermediate.int_detractors_followed_up as f
        on f.response_id = d.payload ->> 'response_id'
    where d.kind = 'sla_breach' and d.status = 'sent'
      and (d.payload ->> 'responded_at')::timestamptz >= %(since)s
    order by f.first_follow_up_at is not null, (d.payload ->> 'responded_at')::timestamptz desc
"""

FOLLOW_UPS_ARE_PUBLISHED = """
    select to_regclass('intermediate.int_detractors_followed_up') is not null
       and to_regclass('ops.delivery_log') is not null
       and exists (select 1 from ops.candidate_build c
                   where c.as_of = %(as_of)s and c.validated_at is not null and c.finished_at is not null)
"""

TICKETS = """
    select delivery_key, payload ->> 'theme_label' as theme_label, (payload ->> 'month_start')::date as month_start,
           (payload ->> 'detractor_mentions')::integer as detractor_mentions, status, attempts, response, sent_at
    from ops.delivery_log
    where kind = 'theme_alert' and (payload ->> 'month_start')::date >= %(since)s
    order by (payload ->> 'month_start')::date desc, delivery_key
"""


def _rows(conn: PgConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql, params or {})
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _scalar(conn: PgConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, params or {})
        row = cur.fetchone()
    return row[0] if row else None


def _plain(value: Any) -> Any:
    """A mart value as JSON: numbers unrounded (numeric as float), dates and times as ISO text."""
    if isinstance(value, Decimal | float):
        return float(value) if math.isfinite(value) else None  # JSON has no NaN / infinity
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _plain_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _marts_day(conn: PgConnection) -> tuple[datetime | None, date]:
    """The marts' `as_of` and the last day it covers (as_of is exclusive)."""
    as_of = _scalar(conn, MARTS_AS_OF)
    if as_of is not None:
        return as_of, (as_of.astimezone(UTC) - timedelta(microseconds=1)).date()
    last_month = _scalar(conn, LAST_MONTH)
    if last_month is None:
        raise ReportError("the marts hold no responses yet: run the pipeline (nps demo / nps run) first")
    following = date(last_month.year + last_month.month // 12, last_month.month % 12 + 1, 1)
    return None, following - timedelta(days=1)


@dataclass
class _Context:
    conn: PgConnection
    day: date
    is_current: bool
    marts_as_of: datetime | None
    figures: Figures
    data: dict[str, Any]


def _section(anchor: str, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{note_html}{body}</section>'


def _trend_section(ctx: _Context) -> str:
    rows = _rows(ctx.conn, NPS_TREND, {"day": ctx.day})
    ctx.data["nps_trend"] = _plain_rows(rows)
    if not rows:
        return _section("trend", "NPS trend", '<p class="empty">No responses up to this day.</p>')
    parts = []
    for grain, title in (("quarter", "Per quarter"), ("month", "Per month")):
        parts.append(f"<h3>{title}</h3>" + ctx.figures.div(trend_figure(rows, grain), 340))
    overall = [r for r in rows if r["segment_type"] == "overall" and r["period_grain"] == "quarter"]
    last = overall[-1] if overall else None
    headline = ""
    if last:
        headline = (f'<p class="headline">{quarter_label(last["period_start"])}: NPS <b>{fmt(last["nps"])}</b> '
                    f'± {fmt(last["margin_of_error"])} from {fmt(last["responses"])} responses</p>')
    return _section("trend", "NPS trend", headline + "".join(parts),
                    "Overall and per plan (segment value as of the response); the shaded band is the 95 % "
                    "margin of error. A point from fewer than the minimum responses is flagged in the marts "
                    "(below_min_n), not hidden.")


def _segments_section(ctx: _Context, quarter: date | None) -> str:
    rows = _rows(ctx.conn, SEGMENTS, {"quarter": quarter}) if quarter else []
    ctx.data["segment_comparison"] = _plain_rows(rows)
    title = f"Segments in {quarter_label(quarter)}" if quarter else "Segments"
    if not rows:
        return _section("segments", title, '<p class="empty">No quarter up to this day.</p>')
    fig = ctx.figures.div(segments_figure(rows), 90 + 19 * len(rows))
    moves = [r for r in rows if segment_flag(r)]
    table = html_table(
        ["segment", "responses", "NPS", "previous", "change", "± MoE of change", "p-value", "flag"],
        ([html.escape(f"{r['segment_type']} · {r['segment_value']}"), esc(r["responses"]), esc(r["nps"]),
          esc(r["previous_nps"]), signed(r["nps_change"]), esc(r["change_margin_of_error"]),
          fmt(r["change_p_value"], 4),
          "significant (FDR)" if r["change_is_significant"] else "exceeds margin of error"] for r in moves),
        ["significant" if r["change_is_significant"] else "exceeds" for r in moves],
        empty="No segment moved by more than its margin of error since the previous quarter.",
    )
    return _section("segments", title, fig + "<h3>Moves since the previous quarter</h3>" + table,
                    "Each segment's NPS with its margin of error. Highlighted: "
                    '<span class="significant">red</span> = the change is significant at the false discovery '
                    "rate across this quarter's segments (change_is_significant); "
                    '<span class="exceeds">amber</span> = the change exceeds its own margin of error only.')


def _recovery_section(ctx: _Context) -> str:
    rows = _rows(ctx.conn, RECOVERY, {"day": ctx.day})
    ctx.data["detractor_recovery"] = _plain_rows(rows)
    if not rows:
        return _section("recovery", "Detractor recovery", '<p class="empty">No detractors up to this day.</p>')
    funnel = ctx.figures.div(recovery_figure(rows), 360)
    sla = ctx.figures.div(sla_figure(rows), 260)
    table = html_table(
        ["quarter", "follow-up", "detractors", "answered again", "recovered", "recovery rate", "awaiting",
         "lost to churn", "median h to follow-up"],
        ([quarter_label(r["period_start"]), html.escape(r["follow_up_bucket"]), esc(r["detractors"]),
          esc(r["with_next_response"]), esc(r["recovered"]), pct(r["recovery_rate"]), esc(r["awaiting_next"]),
          esc(r["lost_to_churn"]), esc(r["median_hours_to_first_follow_up"])] for r in rows),
    )
    return _section("recovery", "Detractor recovery", funnel + "<h3>SLA attainment (overall)</h3>" + sla
                    + "<h3>The numbers</h3>" + table,
                    "Detractors per quarter by how fast a CRM activity followed them up, and how many answered "
                    "a later survey (within 200 days) with 7+ (recovered) or 9+. Recent quarters still await "
                    "their next answers.")


def _recurrence_section(ctx: _Context) -> str:
    rows = _rows(ctx.conn, RECURRENCE, {"day": ctx.day})
    ctx.data["theme_recurrence"] = _plain_rows(rows)
    if not rows:
        return _section("themes", "Theme recurrence", '<p class="empty">No themes up to this day.</p>')
    fig, height = heatmap_figure(rows)
    return _section("themes", "Theme recurrence", ctx.figures.div(fig, height),
                    "Mentions per theme and quarter; ★ new, ✓ resolved (present the quarter before, absent now), "
                    "↺ re-emerged. Labels as set in the theme overrides, else the engine's keywords. The "
                    "no-feedback theme (empty answers) is left out.")


def _alerts_section(ctx: _Context) -> str:
    month = ctx.day.replace(day=1)
    rows = _rows(ctx.conn, ALERTS, {"month": month})
    ctx.data["theme_alerts"] = _plain_rows(rows)
    table = html_table(
        ["theme", "level", "detractor mentions", "previous month", "mentions", "accounts", "ARR at risk", "new"],
        ([html.escape(r["theme_label"] + (f" ({r['parent_theme_label']})" if r["parent_theme_label"] else "")),
          html.escape(r["theme_level"]), esc(r["detractor_mentions"]), esc(r["previous_month_detractor_mentions"]),
          esc(r["mentions"]), esc(r["accounts_affected"]), fmt(r["arr_at_risk"], 0),
          "new" if r["is_new_alert"] else ""] for r in rows),
        ["exceeds" if r["is_new_alert"] else "" for r in rows],
        empty="No theme crossed the alert threshold this month.",
    )
    return _section("alerts", f"Theme alerts, {month:%B %Y}", table,
                    "Themes and sub-themes with at least the alert threshold of detractor mentions this month.")


def _queue_table(kind: str, rows: list[dict[str, Any]]) -> str:
    if kind == "detractor":
        return html_table(
            ["#", "account", "plan", "ARR", "owner", "score", "theme", "priority", "hours open", "comment"],
            ([esc(r["queue_position"]), esc(r["account_name"]), esc(r["plan"]), nowrap(fmt(r["account_arr"], 0)),
              nowrap(esc(r["account_owner"])), esc(r["score"]), esc(r["theme_label"]),
              html.escape(r["priority_quadrant"]) + (" · <b>SLA breached</b>" if r["is_sla_breached"] else ""),
              fmt(r["hours_open"], 0), f'<span class="comment">{esc(r["comment"] or "")}</span>'] for r in rows),
            ["exceeds" if r["is_sla_breached"] else "" for r in rows],
        )
    return html_table(
        ["#", "account", "plan", "ARR", "owner", "score", "theme", "days since", "last asked", "comment"],
        ([esc(r["queue_position"]), esc(r["account_name"]), esc(r["plan"]), nowrap(fmt(r["account_arr"], 0)),
          nowrap(esc(r["account_owner"])), esc(r["score"]), esc(r["theme_label"]), fmt(r["days_since_response"], 0),
          nowrap(esc(r["last_asked_at"].date() if r["last_asked_at"] else None)),
          f'<span class="comment">{esc(r["comment"] or "")}</span>'] for r in rows),
    )


def _queues_section(ctx: _Context) -> str:
    if not ctx.is_current:
        ctx.data["detractor_queue"] = ctx.data["promoter_queue"] = None
        return _section("queues", "Action queues", "",
                        "The queues are the state at the marts' as-of "
                        f"({_as_of_text(ctx.marts_as_of)}): who is still open cannot be rolled back to "
                        f"{ctx.day.isoformat()}, so this earlier report does not show them.")
    parts = []
    for kind, sql, title in (("detractor", DETRACTOR_QUEUE, "Detractors to call"),
                             ("promoter", PROMOTER_QUEUE, "Promoters to ask")):
        rows = _rows(ctx.conn, sql, {"top": QUEUE_TOP})
        ctx.data[f"{kind}_queue"] = _plain_rows(rows)
        parts.append(f"<h3>{title} (top {QUEUE_TOP})</h3>" + _queue_table(kind, rows))
    return _section("queues", "Action queues", "".join(parts),
                    "Open detractors without a follow-up (24 h SLA) and promoters to ask for a referral, "
                    "in queue order.")


def _impact_section(ctx: _Context, quarter: date | None) -> str:
    rows = _rows(ctx.conn, IMPACT, {"quarter": quarter, "top": IMPACT_TOP}) if quarter else []
    ctx.data["theme_impact"] = _plain_rows(rows)
    title = f"NPS points at stake, {quarter_label(quarter)}" if quarter else "NPS points at stake"
    if not rows:
        return _section("impact", title, '<p class="empty">No theme mentions in this quarter.</p>')
    return _section("impact", title, ctx.figures.div(impact_figure(rows), 90 + 26 * len(rows)),
                    "Themes by the NPS points the quarter would gain if their detractors had scored as passives "
                    f"(top {IMPACT_TOP}, all respondents).")


def _facts(ctx: _Context, quarter: date) -> dict[str, Any]:
    """What the next report compares with: the headline numbers, this month's alerts, the queues."""
    overall = {(r["period_grain"], r["period_start"]): r for r in ctx.data.get("nps_trend") or []
               if r["segment_type"] == "overall"}
    month = ctx.day.replace(day=1)
    queues = _rows(ctx.conn, QUEUE_STATE)
    return {
        "quarter": overall.get(("quarter", quarter.isoformat())),
        "month": overall.get(("month", month.isoformat())),
        "alerts": {f"{a['month_start']}:{a['theme_level']}:{a['theme_id']}":
                   a["theme_label"] + (" (sub-theme)" if a["theme_level"] == "subtheme" else "")
                   for a in ctx.data.get("theme_alerts") or []},
        "detractor_queue": sorted(r["response_id"] for r in queues if r["queue"] == "detractor"),
        "sla_breached": sorted(r["response_id"] for r in queues if r["queue"] == "detractor" and r["is_sla_breached"]),
        "promoter_queue": sorted(r["response_id"] for r in queues if r["queue"] == "promoter"),
    }


def _nps_of(point: dict[str, Any] | None) -> float | None:
    return None if not point else point.get("nps")


def _period_name(point: dict[str, Any] | None, grain: str) -> str:
    if not point:
        return "none"
    start = date.fromisoformat(point["period_start"])
    return quarter_label(start) if grain == "quarter" else f"{start:%B %Y}"


def _changes_section(ctx: _Context, quarter: date) -> str:
    if not ctx.is_current or ctx.marts_as_of is None:
        ctx.data["changes"] = None
        return _section("changes", "What changed since the previous report", "",
                        "Shown on the current report only: it compares the published marts with the report "
                        "of the previous publish.")
    now = _facts(ctx, quarter)
    ctx.data["facts"] = now
    prev_row = _rows(ctx.conn, PREVIOUS_SNAPSHOT, {"as_of": ctx.marts_as_of})
    if not prev_row:
        ctx.data["changes"] = None
        return _section("changes", "What changed since the previous report",
                        '<p class="empty">This is the first report of these marts: nothing to compare with yet.</p>')
    before, prev_day = prev_row[0]["facts"], prev_row[0]["report_date"]
    rows = []
    for label, key in ((f"NPS {quarter_label(quarter)}", "quarter"), (f"NPS {ctx.day:%B %Y}", "month")):
        a, b = _nps_of(before.get(key)), _nps_of(now.get(key))
        same_period = (before.get(key) or {}).get("period_start") == (now.get(key) or {}).get("period_start")
        then = fmt(a) if same_period else f"{fmt(a)} ({_period_name(before.get(key), key)}, the period before)"
        rows.append([label, then, fmt(b), signed(b - a) if same_period and a is not None and b is not None else "–"])
    for label, key in (("Detractors to call", "detractor_queue"), ("… past the follow-up SLA", "sla_breached"),
                       ("Promoters to ask", "promoter_queue"), ("Theme alerts this month", "alerts")):
        a, b = len(before.get(key) or []), len(now.get(key) or [])
        rows.append([html.escape(label), fmt(a), fmt(b), signed(b - a)])
    new_alerts = [label for k, label in now["alerts"].items() if k not in (before.get("alerts") or {})]
    entered = sorted(set(now["detractor_queue"]) - set(before.get("detractor_queue") or []))
    left = sorted(set(before.get("detractor_queue") or []) - set(now["detractor_queue"]))
    ctx.data["changes"] = {"previous_report_date": prev_day.isoformat(), "new_alerts": new_alerts,
                           "detractors_entered": entered, "detractors_left": left}
    table = html_table(["", f"previous report ({prev_day.isoformat()})", "now", "change"], rows)
    lists = (f"<p><b>New theme alerts:</b> {html.escape(', '.join(new_alerts)) if new_alerts else 'none'}. "
             f"<b>Detractors</b> that entered the queue: {len(entered)}; left it (followed up, answered again, "
             f"churned or older than the queue's window): {len(left)}.</p>")
    return _section("changes", "What changed since the previous report", table + lists,
                    f"Compared with the report of the previous publish, as of {prev_day.isoformat()}.")


def _follow_up_section(ctx: _Context) -> str:
    title = "The loop: delivered, and followed up"
    if not ctx.is_current or ctx.marts_as_of is None:
        ctx.data["followed_up"] = ctx.data["tickets"] = None
        return _section("loop", title, "", "Shown on the current report only.")
    if not _scalar(ctx.conn, FOLLOW_UPS_ARE_PUBLISHED, {"as_of": ctx.marts_as_of}):
        ctx.data["followed_up"] = ctx.data["tickets"] = None
        return _section("loop", title, '<p class="empty">The follow-ups of these marts are not available (the '
                        "latest build is not the published one).</p>")
    since = ctx.marts_as_of - timedelta(days=30)
    rows = _rows(ctx.conn, FOLLOWED_UP, {"since": since})
    tickets = _rows(ctx.conn, TICKETS, {"since": (ctx.day - timedelta(days=62)).replace(day=1)})
    ctx.data["followed_up"] = _plain_rows(rows)
    ctx.data["tickets"] = _plain_rows(tickets)
    done = sum(r["first_follow_up_at"] is not None for r in rows)
    head = (f'<p class="headline">Detractors sent to their owners past the SLA (answered in the last 30 days): '
            f"<b>{len(rows)}</b>, followed up since: <b>{done}</b>, still open: <b>{len(rows) - done}</b></p>")
    table = html_table(
        ["account", "owner", "answered", "sent via", "followed up (CRM activity)"],
        ([esc(r["account_name"]), nowrap(esc(r["account_owner"])), nowrap(esc(str(r["responded_at"])[:16])),
          html.escape(f"{r['channel']} → {r['target']}"),
          nowrap(esc(str(r["first_follow_up_at"])[:16])) if r["first_follow_up_at"] else "<b>not yet</b>"]
         for r in rows),
        ["" if r["first_follow_up_at"] else "exceeds" for r in rows],
        empty="Nothing was delivered to owners (no delivery channel configured, or no SLA breach).",
    )
    ticket_table = html_table(
        ["month", "theme", "detractor mentions", "ticket", "attempts", "receiver's answer"],
        ([f"{r['month_start']:%b %Y}", esc(r["theme_label"]), esc(r["detractor_mentions"]), esc(r["status"]),
          esc(r["attempts"]), esc((r["response"] or "")[:120])] for r in tickets),
        ["" if r["status"] == "sent" else "significant" for r in tickets],
        empty="No theme-alert ticket in the last three months.",
    )
    return _section("loop", title, head + table + "<h3>Theme-alert tickets</h3>" + ticket_table,
                    "What the delivery sent (ops.delivery_log) and whether the CRM has logged a follow-up since "
                    "(a call, e-mail, meeting or ticket activity linked to the response or on its account, the "
                    "rule of detractor_recovery).")


def save_snapshot(conn: PgConnection, report: Report) -> None:
    """Keep the facts a current report showed, for the next report's "what changed"."""
    facts = report.data.get("facts")
    if not report.is_current or report.marts_as_of is None or facts is None:
        return
    with conn.cursor() as cur:
        cur.execute(SAVE_SNAPSHOT, {"as_of": report.marts_as_of, "day": report.report_date,
                                    "facts": json.dumps(facts, default=str)})
    conn.commit()


# ------------------------------------------------------------------------------------------ page



def _as_of_text(as_of: datetime | None) -> str:
    return as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if as_of else "unknown"


def _page(ctx: _Context, sections: list[str], marts_day: date) -> str:
    import plotly.offline

    when = (f"as of {ctx.day.isoformat()} (the marts published as of {_as_of_text(ctx.marts_as_of)})"
            if ctx.is_current else
            f"as of {ctx.day.isoformat()}, an earlier report from the current marts (published as of "
            f"{_as_of_text(ctx.marts_as_of)}, covering up to {marts_day.isoformat()}): periods that start "
            f"on or before {ctx.day.isoformat()}, with their numbers as published; the latest quarter and "
            "this month are the ones that hold that day")
    data = json.dumps(ctx.data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("changes", "Changes"), ("trend", "Trend"), ("segments", "Segments"), ("recovery", "Recovery"),
        ("themes", "Themes"), ("alerts", "Alerts"), ("queues", "Queues"), ("loop", "Loop"), ("impact", "At stake")))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>NPS report {ctx.day.isoformat()}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>'
        f'<header><h1>NPS morning report</h1><p class="asof">{html.escape(when)}</p><nav>{nav}</nav></header>'
        f'<main>{"".join(sections)}</main>'
        f'<script type="application/json" id="{DATA_ELEMENT_ID}">{data}</script></body></html>\n'
    )


def render_report(conn: PgConnection, as_of: date | None = None) -> Report:
    """The report of the marts in `conn`'s warehouse, as published or as of an earlier day."""
    marts_as_of, marts_day = _marts_day(conn)
    if as_of is not None and as_of > marts_day:
        raise ReportError(f"--as-of {as_of.isoformat()} is after the published marts, which cover up to "
                          f"{marts_day.isoformat()} (as of {_as_of_text(marts_as_of)})")
    day = as_of or marts_day
    ctx = _Context(conn=conn, day=day, is_current=day == marts_day, marts_as_of=marts_as_of, figures=Figures(),
                   data={"report_date": day.isoformat(), "marts_as_of": _plain(marts_as_of)})
    quarter = quarter_start(day)
    sections = [
        _trend_section(ctx),
        _segments_section(ctx, quarter),
        _recovery_section(ctx),
        _recurrence_section(ctx),
        _alerts_section(ctx),
        _queues_section(ctx),
        _follow_up_section(ctx),
        _impact_section(ctx, quarter),
    ]
    # first on the page, built last: it compares what the other sections read with the previous report
    sections.insert(0, _changes_section(ctx, quarter))
    return Report(html=_page(ctx, sections, marts_day), marts_as_of=marts_as_of, report_date=day,
                  is_current=ctx.is_current, data=ctx.data)


def write_atomically(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder (a reader never sees half a page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_report(report: Report, out: Path | None = None, extra: Sequence[Path] = ()) -> list[Path]:
    """Write `report` to `out` (default: the stable `latest_path()` when it shows the current marts;
    an earlier report does not replace the newest), to its dated copy `report-<date>.html` in
    `reports_dir()` and to each of `extra`. Returns the paths written."""
    targets: list[Path] = []
    if out is not None:
        targets.append(Path(out))
    elif report.is_current:
        targets.append(latest_path())
    targets.append(dated_path(report.report_date))
    targets.extend(Path(p) for p in extra)
    written: list[Path] = []
    for path in targets:
        if path.resolve() not in {p.resolve() for p in written}:
            written.append(write_atomically(path, report.html))
    return written


def publish_report(out: Path | None = None, as_of: date | None = None, extra: Sequence[Path] = (),
                   url: str | None = None) -> tuple[Report, list[Path]]:
    """Render the report of the configured warehouse's marts and write it (see `write_report`)."""
    from nps import warehouse

    conn = warehouse.connect(url)
    try:
        report = render_report(conn, as_of)
        save_snapshot(conn, report)
    finally:
        conn.close()
    return report, write_report(report, out, extra)
