"""Delivery of what the published marts ask people to act on, once each: the morning report, a
ticket per new theme alert, and each detractor past its follow-up SLA to its owner.

**What** (`plan_items`, from the published marts):
- `report:<report date>`: the digest (headline NPS, the new theme alerts, the SLA breaches, the
  report attached or linked) to the report recipients by e-mail and to the Slack-compatible webhook;
- `theme_alert:<month>:<level>:<theme id>`: each new alert (`theme_alerts.is_new_alert`) of the
  months of the run's interval (a nightly run: the report's month) opens a ticket: a JSON POST to
  the ticket webhook (`ticket_payload`, documented in docs/delivery.md);
- `sla_breach:<response id>`: each detractor in `detractor_queue` past its SLA (`is_sla_breached`)
  goes to its owner: by e-mail when the owner has an address (the owner field is one, or the owner
  map gives one), else to the Slack webhook naming the owner. An owner's breaches of one night go in
  one message.

**Once** (`deliver`, the log `ops.delivery_log`): a row per (delivery_key, channel) says what went
where, when, after how many attempts and with what response. Only keys not yet `sent` are sent, so a
rerun of the same night or a backfill sends nothing twice; a ticket that failed is sent by the
next delivery whatever its month. A key is written `sending` (committed)
before its message goes out: a run killed in between leaves it `sending`, and the next run sends it
again with the same message id (e-mail `Message-ID`, webhook `Idempotency-Key`) so the receiver can
drop the copy. A failed send is retried with backoff; what still fails is logged `failed` with the
error and retried by the next run (or the task's own retry); the marts are published already.

The channels themselves (Airflow connections through the SMTP, Slack and HTTP providers) live in
`nps_airflow.deliver`; this module only needs a callable per channel that raises on failure and
returns the receiver's response as text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nps.report import _plain, _rows, _scalar, quarter_start
from nps.report_parts import quarter_label

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

EMAIL, SLACK, TICKET = "email", "slack", "ticket"
CHANNELS = (EMAIL, SLACK, TICKET)
REPORT, THEME_ALERT, SLA_BREACH = "report", "theme_alert", "sla_breach"
LOCK = "delivery"
SENT, SENDING, FAILED = "sent", "sending", "failed"

Sender = Callable[["Message"], str]


@dataclass(frozen=True)
class Item:
    """One thing to deliver on one channel; `key` is what makes it happen once."""

    key: str
    kind: str
    channel: str
    target: str
    payload: dict[str, Any]


@dataclass
class Message:
    """What a channel sends: one or more items of the same kind, channel and target."""

    channel: str
    target: str
    kind: str
    items: list[Item]
    subject: str
    text: str
    html: str
    json: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [i.key for i in self.items]

    @property
    def message_id(self) -> str:
        """The same for every attempt and rerun of these keys: a receiver can drop a copy."""
        digest = hashlib.sha256(f"{self.channel}|{'|'.join(sorted(self.keys))}".encode()).hexdigest()[:32]
        return f"<{digest}@nps-pipeline>"


@dataclass
class DeliveryResult:
    sent: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    already_sent: int = 0
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "already_sent": self.already_sent,
                "skipped": self.skipped}


@dataclass
class Settings:
    """Where things go: the report's e-mail recipients, owners' addresses, the report's link."""

    report_to: list[str] = field(default_factory=list)
    owner_emails: Mapping[str, str] = field(default_factory=dict)
    report_url: str | None = None
    report_file: Path | None = None


class DeliveryFailed(RuntimeError):
    """Some messages could not be delivered after their retries (logged in ops.delivery_log)."""


# ------------------------------------------------------------------------------------------ what

NEW_ALERTS = """
    select month_start, theme_id, theme_level, theme_label, parent_theme_label, keywords, mentions,
           detractor_mentions, detractor_share, previous_month_detractor_mentions, alert_threshold,
           accounts_affected, arr_at_risk, first_detractor_mention_at, last_detractor_mention_at,
           sample_comments, sample_response_ids
    from marts.theme_alerts
    where month_start between %(first_month)s and %(month)s and is_new_alert
    order by month_start, detractor_mentions desc, theme_level, theme_id
"""

SLA_BREACHES = """
    select response_id, account_id, account_name, plan, account_arr, account_owner, score, comment,
           theme_label, priority_quadrant, queue_position, responded_at, follow_up_due_at, hours_open
    from marts.detractor_queue
    where is_sla_breached
    order by queue_position
"""

HEADLINE = """
    select period_start, responses, nps, margin_of_error
    from marts.nps_by_segment
    where period_grain = 'quarter' and segment_type = 'overall' and period_start = %(quarter)s
"""

MARTS_AS_OF = "select as_of from ops.published_builds order by publish_id desc limit 1"


def marts_as_of(conn: PgConnection) -> datetime | None:
    return _scalar(conn, MARTS_AS_OF)


def report_day(as_of: datetime) -> date:
    """The last day the marts cover (their as_of is an exclusive bound), as the report names it."""
    return (as_of.astimezone(UTC) - timedelta(microseconds=1)).date()


def ticket_payload(alert: dict[str, Any], key: str, as_of: datetime, report_link: str | None) -> dict[str, Any]:
    """The ticket webhook's JSON body for a new theme alert (docs/delivery.md)."""
    level = "sub-theme" if alert["theme_level"] == "subtheme" else "theme"
    parent = f" ({alert['parent_theme_label']})" if alert.get("parent_theme_label") else ""
    body = {k: _plain(v) for k, v in alert.items()}
    return {
        "delivery_key": key,
        "kind": THEME_ALERT,
        "title": (f"NPS theme alert: {alert['theme_label']}{parent}: {alert['detractor_mentions']} detractor "
                  f"mentions in {alert['month_start']:%B %Y}"),
        "description": (f"The {level} '{alert['theme_label']}'{parent} had {alert['detractor_mentions']} detractor "
                        f"mentions in {alert['month_start']:%B %Y} (threshold {alert['alert_threshold']}, previous "
                        f"month {alert['previous_month_detractor_mentions']}), from {alert['accounts_affected']} "
                        f"accounts with {float(alert['arr_at_risk'] or 0):,.0f} ARR."),
        "marts_as_of": _plain(as_of),
        "report": report_link,
        **body,
    }


def _is_email(value: str | None) -> bool:
    return value is not None and "@" in value and " " not in value.strip()


def plan_items(conn: PgConnection, settings: Settings, channels: Iterable[str],
               since: date | None = None) -> tuple[list[Item], dict]:
    """Everything the published marts ask to deliver on the configured `channels`, with the digest's
    facts (headline, alerts, breaches) for composing the report message. Theme alerts: the new ones
    of the months from `since` (the run's interval start) to the report's (default: the report's)."""
    channels = set(channels)
    as_of = marts_as_of(conn)
    if as_of is None:
        return [], {}
    day = report_day(as_of)
    link = settings.report_url or (str(settings.report_file) if settings.report_file else None)
    first_month = min(since, day).replace(day=1) if since else day.replace(day=1)
    alerts = _rows(conn, NEW_ALERTS, {"first_month": first_month, "month": day.replace(day=1)})
    breaches = _rows(conn, SLA_BREACHES)
    headline = _rows(conn, HEADLINE, {"quarter": quarter_start(day)})
    facts = {"as_of": as_of, "day": day, "alerts": alerts, "breaches": breaches,
             "headline": headline[0] if headline else None, "link": link}

    items: list[Item] = []
    report_key = f"{REPORT}:{day.isoformat()}"
    if EMAIL in channels and settings.report_to:
        items.append(Item(report_key, REPORT, EMAIL, ", ".join(settings.report_to), {"report_date": day.isoformat()}))
    if SLACK in channels:
        items.append(Item(report_key, REPORT, SLACK, "webhook", {"report_date": day.isoformat()}))
    if TICKET in channels:
        for alert in alerts:
            key = f"{THEME_ALERT}:{alert['month_start'].isoformat()}:{alert['theme_level']}:{alert['theme_id']}"
            items.append(Item(key, THEME_ALERT, TICKET, "webhook", ticket_payload(alert, key, as_of, link)))
    for breach in breaches:
        owner = breach["account_owner"]
        address = owner if _is_email(owner) else settings.owner_emails.get(owner or "")
        payload = {k: _plain(v) for k, v in breach.items()}
        key = f"{SLA_BREACH}:{breach['response_id']}"
        if address and EMAIL in channels:
            items.append(Item(key, SLA_BREACH, EMAIL, address, payload))
        elif SLACK in channels:
            items.append(Item(key, SLA_BREACH, SLACK, owner or "(no owner)", payload))
    return items, facts


# ------------------------------------------------------------------------------------------ messages


def _digest(facts: dict, settings: Settings) -> tuple[str, str, str]:
    day, head = facts["day"], facts["headline"]
    subject = f"NPS morning report {day.isoformat()}"
    lines = [f"NPS morning report as of {day.isoformat()}"]
    if head:
        lines.append(f"{quarter_label(head['period_start'])}: NPS {float(head['nps']):.1f} "
                     f"± {float(head['margin_of_error']):.1f} from {head['responses']} responses")
    alerts = facts["alerts"]
    lines.append(f"New theme alerts: {len(alerts)}")
    lines += [f"  • {a['theme_label']}: {a['detractor_mentions']} detractor mentions in {a['month_start']:%B %Y}"
              for a in alerts]
    lines.append(f"Detractors past their follow-up SLA: {len(facts['breaches'])}")
    if settings.report_url:
        lines.append(f"Report: {settings.report_url}")
    elif facts["link"]:
        lines.append(f"Report: {facts['link']}" + (" (attached)" if settings.report_file else ""))
    text = "\n".join(lines)
    html_lines = "".join(f"<p>{_esc(line)}</p>" for line in lines)
    return subject, text, f"<html><body>{html_lines}</body></html>"


def _esc(value: Any) -> str:
    import html

    return html.escape(str(value))


def _breach_line(p: dict[str, Any]) -> str:
    comment = (p.get("comment") or "").strip().replace("\n", " ")
    return (f"{p['account_name'] or p['account_id']} (ARR {float(p['account_arr'] or 0):,.0f}): "
            f"response {p['response_id']}, score {p['score']}, "
            f"{float(p['hours_open'] or 0):.0f} h open, due {str(p['follow_up_due_at'])[:16]}"
            + (f" — “{comment[:200]}”" if comment else ""))


def compose(items: Sequence[Item], facts: dict, settings: Settings) -> list[Message]:
    """Messages for `items`: the report one per channel, a ticket per alert, an owner's breaches in one."""
    messages: list[Message] = []
    groups: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        if item.kind == REPORT:
            subject, text, html = _digest(facts, settings)
            files = [str(settings.report_file)] if (item.channel == EMAIL and settings.report_file
                                                    and not settings.report_url
                                                    and settings.report_file.exists()) else []
            messages.append(Message(item.channel, item.target, REPORT, [item], subject, text, html, files=files))
        elif item.kind == THEME_ALERT:
            p = item.payload
            messages.append(Message(item.channel, item.target, THEME_ALERT, [item], p["title"], p["description"],
                                    f"<p>{_esc(p['description'])}</p>", json=p))
        else:
            groups.setdefault((item.channel, item.target), []).append(item)
    for (channel, target), group in groups.items():
        subject = f"{len(group)} detractor{'s' if len(group) > 1 else ''} past the follow-up SLA"
        owner = group[0].payload.get("account_owner") or "(no owner)"
        lines = [_breach_line(i.payload) for i in group]
        text = f"{owner}: {subject}\n" + "\n".join(f"  • {line}" for line in lines)
        html = (f"<p>{_esc(owner)}: {_esc(subject)}</p><ul>"
                + "".join(f"<li>{_esc(line)}</li>" for line in lines) + "</ul>")
        messages.append(Message(channel, target, SLA_BREACH, group, f"NPS: {subject}", text, html,
                                json={"kind": SLA_BREACH, "owner": owner, "items": [i.payload for i in group]}))
    return messages


# ------------------------------------------------------------------------------------------ the log


def sent_keys(conn: PgConnection) -> set[tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute("select delivery_key, channel from ops.delivery_log where status = %s", (SENT,))
        return {(k, c) for k, c in cur.fetchall()}


def unsent_tickets(conn: PgConnection) -> list[Item]:
    with conn.cursor() as cur:
        cur.execute("select delivery_key, kind, channel, target, payload from ops.delivery_log "
                    "where kind = %s and status <> %s order by delivery_key", (THEME_ALERT, SENT))
        return [Item(key, kind, channel, target, payload) for key, kind, channel, target, payload in cur.fetchall()]


def _log(conn: PgConnection, message: Message, status: str, run_id: str, response: str | None,
         attempted: bool) -> None:
    with conn.cursor() as cur:
        for item in message.items:
            cur.execute(
                """
                insert into ops.delivery_log as d
                    (delivery_key, channel, kind, target, status, attempts, response, run_id, message_id,
                     payload, first_attempt_at, last_attempt_at, sent_at)
                values (%(key)s, %(channel)s, %(kind)s, %(target)s, %(status)s, %(add)s, %(response)s, %(run_id)s,
                        %(message_id)s, %(payload)s, now(), now(), case when %(status)s = 'sent' then now() end)
                on conflict (delivery_key, channel) do update set
                    target = excluded.target, status = excluded.status, attempts = d.attempts + %(add)s,
                    response = coalesce(excluded.response, d.response), run_id = excluded.run_id,
                    message_id = excluded.message_id, payload = excluded.payload,
                    last_attempt_at = now(), sent_at = excluded.sent_at
                """,
                {"key": item.key, "channel": message.channel, "kind": item.kind, "target": message.target,
                 "status": status, "add": 1 if attempted else 0, "response": response, "run_id": run_id,
                 "message_id": message.message_id, "payload": json.dumps(item.payload, default=str)},
            )
    conn.commit()


def deliver(conn: PgConnection, settings: Settings, senders: Mapping[str, Sender], run_id: str, *,
            since: date | None = None, attempts: int = 3, retry_seconds: float = 2.0,
            max_age: timedelta | None = None,
            sleep: Callable[[float], None] = time.sleep) -> DeliveryResult:
    """Send what the published marts ask for and the log says is not sent yet; see the module doc."""
    from nps import warehouse

    result = DeliveryResult()
    # one delivery at a time (a nightly and a backfill finishing together): the second sees the first's log
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_lock(%s)", (warehouse.lock_key(LOCK),))
    try:
        as_of = marts_as_of(conn)
        if max_age is not None and as_of is not None and as_of < datetime.now(UTC) - max_age:
            # a backfill or a catch-up over history: its alerts are history, nobody is to be paged
            result.skipped = (f"the published marts are as of {as_of:%Y-%m-%d %H:%M %Z}, more than "
                              f"{max_age.total_seconds() / 86400:g} days ago: nothing is delivered for history")
            return result
        items, facts = plan_items(conn, settings, senders, since)
        done = sent_keys(conn)
        done_keys = {key for key, _ in done}
        # the report goes to every channel; an alert or a breach goes to one place, once (even if an
        # owner's address appeared since it was posted to the webhook)
        pending = [i for i in items if (i.key, i.channel) not in done and (i.kind == REPORT or i.key not in done_keys)]
        # a ticket that failed in an earlier run is sent even when this run's interval no longer holds
        # its month (a breach is sent while it is still in the queue; an old digest is superseded)
        planned = {(i.key, i.channel) for i in items}
        pending += [i for i in unsent_tickets(conn) if (i.key, i.channel) not in planned]
        result.already_sent = len(items) - len(pending)
        for message in compose(pending, facts, settings):
            _log(conn, message, SENDING, run_id, None, attempted=False)
            error = ""
            for attempt in range(1, attempts + 1):
                try:
                    response = senders[message.channel](message)
                except Exception as exc:  # any failure of a channel: logged, retried, reported
                    error = f"{type(exc).__name__}: {exc}"[:2000]
                    _log(conn, message, FAILED, run_id, error, attempted=True)
                    log.warning("delivery of %s via %s to %s failed (attempt %d of %d): %s", message.keys[0],
                                message.channel, message.target, attempt, attempts, error)
                    if attempt < attempts:
                        sleep(retry_seconds * 2 ** (attempt - 1))
                    continue
                _log(conn, message, SENT, run_id, response[:2000], attempted=True)
                result.sent.append({"channel": message.channel, "target": message.target, "kind": message.kind,
                                    "keys": message.keys, "response": response[:200]})
                break
            else:
                result.failed.append({"channel": message.channel, "target": message.target, "kind": message.kind,
                                      "keys": message.keys, "error": error})
    finally:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_unlock(%s)", (warehouse.lock_key(LOCK),))
        conn.commit()
    return result

