"""The readable summary printed at the end of a run: what BI users will find in the marts."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

NPS_BY_QUARTER = """
    select period_start, responses, nps, margin_of_error, revenue_weighted_nps, below_min_n
    from marts.nps_by_segment
    where period_grain = 'quarter' and segment_type = 'overall'
    order by period_start
"""

TOP_THEMES = """
    with latest as (select max(quarter_start) as q from marts.theme_recurrence)
    select theme_id, theme_label, keywords, mentions, detractor_share, quarters_present,
           current_streak, status
    from marts.theme_recurrence, latest
    where quarter_start = latest.q and theme_level = 'theme' and not is_no_feedback
      and status in ('recurring', 'new', 're-emerged')
    order by quarters_present desc, mentions desc, theme_id
    limit %s
"""

SUBTHEMES = """
    with latest as (select max(quarter_start) as q from marts.theme_recurrence)
    select parent_theme_id, theme_label, mentions
    from marts.theme_recurrence, latest
    where quarter_start = latest.q and theme_level = 'subtheme' and mentions > 0
    order by parent_theme_id, mentions desc, theme_id
"""

NO_FEEDBACK = """
    with latest as (select max(quarter_start) as q from marts.theme_recurrence)
    select coalesce(sum(mentions) filter (where is_no_feedback), 0), coalesce(sum(mentions), 0)
    from marts.theme_recurrence, latest
    where quarter_start = latest.q and theme_level = 'subtheme'
"""

RESOLVED_THEMES = """
    select theme_level, theme_label, quarter_start, coalesce(parent_theme_label, '')
    from marts.theme_recurrence
    where status = 'resolved' and not is_no_feedback
    order by quarter_start, theme_level, theme_label
"""

RECOVERY_BY_BUCKET = """
    select follow_up_bucket,
           sum(detractors) as detractors,
           sum(with_next_response) as with_next,
           sum(recovered) as recovered,
           sum(awaiting_next) as awaiting,
           sum(lost_to_churn) as lost
    from marts.detractor_recovery
    where period_grain = 'quarter' and segment_type = 'overall'
    group by follow_up_bucket
    order by array_position(array['within_24h', 'within_48h', 'later', 'never', 'no_follow_up_data'],
                            follow_up_bucket)
"""

MISSING_SOURCES = """
    select source_entity, mart, effect
    from marts.source_coverage
    where effect is not null
    order by source_entity, mart
"""


QUEUE = """
    select max(as_of), priority_quadrant, count(*), count(*) filter (where is_sla_breached)
    from marts.detractor_queue
    group by priority_quadrant
    order by min(priority_rank)
"""

ALERTS = """
    select month_start, theme_label, detractor_mentions, accounts_affected, arr_at_risk, is_new_alert
    from marts.theme_alerts
    where month_start = (select max(month_start) from marts.theme_alerts) and theme_level = 'subtheme'
    order by detractor_mentions desc, theme_id
    limit %s
"""

THEMES_AT_STAKE = """
    select quarter_start, theme_label, mentioners, nps_mentioners, nps_non_mentioners,
           difference_exceeds_margin_of_error, nps_points_at_stake, detractor_arr, priority_quadrant
    from marts.theme_impact
    where quarter_start = (select max(quarter_start) from marts.theme_impact)
      and segment_type = 'overall' and theme_level = 'theme' and not is_no_feedback
      and nps_points_at_stake > 0
    order by nps_points_at_stake desc, theme_id
    limit %s
"""

PROMOTER_ASKS = """
    select as_of, queue_position, account_name, account_arr, account_owner, score, comment,
           count(*) over () as promoters
    from marts.promoter_queue
    order by queue_position
    limit %s
"""


def _quarter(start: date) -> str:
    """2025-Q3: how the summary names the quarter a date falls in."""
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def _fetch(conn: PgConnection, sql: str, params: tuple = ()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _missing_sources(conn: PgConnection) -> list[str]:
    """What the marts cannot show because optional sources are not configured (none: no lines)."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('marts.source_coverage')")
        if cur.fetchone()[0] is None:
            return []
    rows = _fetch(conn, MISSING_SOURCES)
    if not rows:
        return []
    lines = ["", "Not configured: " + ", ".join(dict.fromkeys(e for e, _, _ in rows))
             + " (sources.yml; marts.source_coverage). Without them:"]
    lines += [f"  {entity:<12} {mart:<23} {effect}" for entity, mart, effect in rows]
    return lines


def _themes(conn: PgConnection, top: int) -> list[str]:
    """Top parent themes of the latest quarter, each with its largest sub-themes; the no-feedback
    share; themes and sub-themes resolved."""
    lines = ["", "Top recurring themes (latest quarter), with their largest sub-themes"]
    rows = _fetch(conn, TOP_THEMES, (top,))
    if not rows:
        lines.append("  (no theme present in the latest quarter)")
    subthemes: dict[int, list[tuple[str, int]]] = {}
    for parent, label, mentions in _fetch(conn, SUBTHEMES):
        subthemes.setdefault(parent, []).append((label, mentions))
    for theme_id, label, keywords, mentions, dshare, present, streak, status in rows:
        share = f"{dshare:.0%}" if dshare is not None else "n/a"
        lines.append(
            f"  #{theme_id:<3} {label[:40]:<40} {mentions:>5} mentions, {share:>4} detractors, "
            f"{present} quarter(s), streak {streak}, {status}"
        )
        kids = subthemes.get(theme_id, [])
        if len(kids) > 1:
            lines.append("        sub-themes: " + "; ".join(f"{k[:32]} ({n})" for k, n in kids[:3])
                         + (f"; {len(kids) - 3} more" if len(kids) > 3 else ""))
        else:
            lines.append(f"        keywords: {keywords}")
    no_feedback, themed = _fetch(conn, NO_FEEDBACK)[0]
    if no_feedback:
        lines.append(f"  no specific feedback ('nothing', 'n/a', 'all good'): {no_feedback} answers, "
                     f"{no_feedback / themed:.0%} of the themed comments")
    resolved = _resolved_line(_fetch(conn, RESOLVED_THEMES))
    if resolved:
        lines.append(resolved)
    return lines


def _themes_at_stake(conn: PgConnection, top: int) -> list[str]:
    """The latest quarter's themes by NPS points at stake (marts.theme_impact, overall)."""
    rows = _fetch(conn, THEMES_AT_STAKE, (top,))
    if not rows:
        return []
    quarter = rows[0][0]
    lines = ["", f"Themes by NPS at stake {_quarter(quarter)} (marts.theme_impact): "
                 "points NPS would gain if their detractors were passives"]
    lines.append(f"  {'theme':<40} {'at stake':>8} {'mentions':>8} {'NPS them':>8} {'others':>7}  "
                 f"{'detractor ARR':>13}  quadrant")
    for _, label, n, nps_m, nps_o, real, stake, arr, quadrant in rows:
        others = f"{nps_o:7.1f}" if nps_o is not None else f"{'n/a':>7}"
        mark = "*" if real else " "
        lines.append(f"  {label[:40]:<40} {stake:8.2f} {n:>8} {nps_m:8.1f} {others}{mark} {arr:>13,.0f}  "
                     f"{quadrant}")
    lines.append("  (* the gap between the two NPS exceeds its margin of error)")
    return lines


def _promoter_asks(conn: PgConnection, top: int) -> list[str]:
    """Today's first referral / review asks (marts.promoter_queue)."""
    rows = _fetch(conn, PROMOTER_ASKS, (top,))
    if not rows:
        return ["", "Promoters to ask (marts.promoter_queue): none today"]
    as_of, total = rows[0][0], rows[0][7]
    lines = ["", f"Promoters to ask for a referral or review (marts.promoter_queue as of {as_of:%Y-%m-%d %H:%M} "
                 f"UTC): {total}, first {len(rows)}"]
    for _, pos, account, arr, owner, score, comment in (r[:7] for r in rows):
        arr_text = f"{arr:>10,.0f}" if arr is not None else f"{'n/a':>10}"
        said = " ".join((comment or "").split())
        said = f'"{said[:60]}{"..." if len(said) > 60 else ""}"' if said else "(no comment)"
        lines.append(f"  {pos:>3}. {(account or 'unknown')[:28]:<28} ARR {arr_text}  {(owner or '-')[:18]:<18} "
                     f"{score:>2}  {said}")
    return lines


def _resolved_line(rows: list[tuple]) -> str:
    """Themes gone after a quarter, each with how many of its sub-themes went with it; sub-themes
    gone from a theme that is still there only counted (marts.theme_recurrence has them all)."""
    themes = [(label, q) for level, label, q, _ in rows if level == "theme"]
    gone_with = {(label, _quarter(q)) for label, q in themes}
    kids: dict[tuple[str, str], int] = {}
    others = 0
    for level, _label, q, parent in rows:
        if level != "theme":
            key = (parent, _quarter(q))
            if key in gone_with:
                kids[key] = kids.get(key, 0) + 1
            else:
                others += 1
    parts = []
    for label, q in themes:
        n = kids.get((label, _quarter(q)), 0)
        parts.append(f"{label} (gone in {_quarter(q)}" + (f", with {n} sub-theme{'s' * (n != 1)})" if n else ")"))
    if others:
        parts.append(f"{others} sub-theme{'s' * (others != 1)} of themes still present")
    return ("  resolved: " + "; ".join(parts) + " (marts.theme_recurrence, status 'resolved')") if parts else ""


def render_summary(conn: PgConnection, *, top_themes: int = 8) -> str:
    lines = _missing_sources(conn)
    lines += ["", "NPS per quarter (95% margin of error)"]
    lines.append(f"  {'quarter':<10} {'responses':>9} {'NPS':>7} {'+/-':>6} {'ARR-weighted':>13}")
    for start, n, nps, moe, rw, small in _fetch(conn, NPS_BY_QUARTER):
        q = _quarter(start)
        flag = "  (below min n)" if small else ""
        rw_text = f"{rw:13.1f}" if rw is not None else f"{'n/a':>13}"
        lines.append(f"  {q:<10} {n:>9} {nps:7.1f} {moe:6.1f} {rw_text}{flag}")

    lines += _themes(conn, top_themes)
    lines += ["", "Detractor recovery by follow-up (all quarters)"]
    lines.append(f"  {'bucket':<17} {'detractors':>10} {'next seen':>9} {'recovered':>9} {'rate':>6} "
                 f"{'awaiting':>8} {'churned':>7}")
    for bucket, det, nxt, rec, awaiting, lost in _fetch(conn, RECOVERY_BY_BUCKET):
        rate = f"{rec / nxt:.0%}" if nxt else "n/a"
        lines.append(f"  {bucket:<17} {det:>10} {nxt:>9} {rec:>9} {rate:>6} {awaiting:>8} {lost:>7}")

    queue = _fetch(conn, QUEUE)
    as_of = f" as of {queue[0][0]:%Y-%m-%d %H:%M} UTC" if queue else ""
    lines += ["", f"Detractors to call (marts.detractor_queue{as_of})"]
    if not queue:
        lines.append("  (none open)")
    for _, quadrant, n, breached in queue:
        lines.append(f"  {quadrant:<31} {n:>4} open, {breached:>4} past the 24 h follow-up SLA")

    lines += _themes_at_stake(conn, top_themes)
    lines += _promoter_asks(conn, 5)

    alerts = _fetch(conn, ALERTS, (top_themes,))
    if alerts:
        month = alerts[0][0]
        lines += ["", f"Sub-theme alerts {month:%Y-%m} (marts.theme_alerts)"]
        for _, label, det, accounts, arr, new in alerts:
            flag = "new" if new else "running"
            lines.append(f"  {label[:40]:<40} {det:>4} detractor mentions, {accounts:>3} accounts, "
                         f"ARR {arr:>12,.0f}, {flag}")
    return "\n".join(lines) + "\n"


def published_summary() -> str:
    """The summary of the marts published in the configured warehouse (the DAG's report task)."""
    from nps import warehouse

    conn = warehouse.connect()
    try:
        return render_summary(conn)
    finally:
        conn.close()
