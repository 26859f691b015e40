"""The delivery channels, as Airflow configures them: a connection per channel, sent through
Airflow's own providers (what nps.delivery sends, and the log that makes it happen once, live there).

- e-mail: connection `nps_smtp` (type smtp; extra `from_email`, and `to`: the report's recipients),
  through SmtpHook: the report (attached, or linked with NPS_REPORT_BASE_URL) and owners' SLA breaches;
- Slack-compatible webhook: connection `nps_slack_webhook` (type slackwebhook: the webhook URL, or
  host + token), through SlackWebhookHook: the digest, breaches of owners without an address;
- ticket webhook: connection `nps_ticket_webhook` (type http; extra `endpoint`, default `/`),
  through HttpHook (POST JSON): a ticket per new theme alert.

A channel whose connection does not exist is off. Owners' addresses: the Airflow Variable
`nps_owner_emails` (a JSON object, owner name -> address); an owner field that is an address needs
no entry. docs/delivery.md has the set-up and the ticket's JSON.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from nps import config, delivery, warehouse

log = logging.getLogger(__name__)

SMTP_CONN_ID = "nps_smtp"
SLACK_CONN_ID = "nps_slack_webhook"
TICKET_CONN_ID = "nps_ticket_webhook"
OWNER_EMAILS_VARIABLE = "nps_owner_emails"


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _extra(conn: Any) -> dict[str, Any]:
    return conn.extra_dejson if conn is not None else {}


def smtp_sender(conn_id: str) -> delivery.Sender:
    def send(message: delivery.Message) -> str:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook.send_email_smtp(
                to=message.target, subject=message.subject, html_content=message.html, files=message.files or None,
                custom_headers={"Message-ID": message.message_id, "X-NPS-Delivery-Keys": ", ".join(message.keys)},
            )
        return f"accepted by the SMTP server for {message.target}"

    return send


def slack_sender(conn_id: str) -> delivery.Sender:
    def send(message: delivery.Message) -> str:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        # raises on any status but 200 (the hook's own check)
        response = SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=30).send(text=message.text)
        return f"{response.status_code} {response.body}"

    return send


def ticket_sender(conn_id: str, endpoint: str) -> delivery.Sender:
    def send(message: delivery.Message) -> str:
        from airflow.providers.http.hooks.http import HttpHook

        # raises on a status of 400 or more (the hook's check_response)
        response = HttpHook(method="POST", http_conn_id=conn_id).run(
            endpoint=endpoint, json=message.json,
            headers={"Content-Type": "application/json", "Idempotency-Key": message.message_id},
            extra_options={"timeout": 30},
        )
        return f"{response.status_code} {response.text}"

    return send


def senders() -> tuple[dict[str, delivery.Sender], dict[str, Any]]:
    """The configured channels, and the connections they came from (for the settings)."""
    out: dict[str, delivery.Sender] = {}
    conns = {channel: _connection(conn_id) for channel, conn_id in (
        (delivery.EMAIL, SMTP_CONN_ID), (delivery.SLACK, SLACK_CONN_ID), (delivery.TICKET, TICKET_CONN_ID))}
    if conns[delivery.EMAIL] is not None:
        out[delivery.EMAIL] = smtp_sender(SMTP_CONN_ID)
    if conns[delivery.SLACK] is not None:
        out[delivery.SLACK] = slack_sender(SLACK_CONN_ID)
    if conns[delivery.TICKET] is not None:
        out[delivery.TICKET] = ticket_sender(TICKET_CONN_ID, _extra(conns[delivery.TICKET]).get("endpoint", "/"))
    return out, conns


def _recipients(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.replace(";", ",").split(",")
    return [v.strip() for v in value or [] if v and v.strip()]


def owner_emails() -> dict[str, str]:
    from airflow.sdk import Variable

    raw = Variable.get(OWNER_EMAILS_VARIABLE, default=None)
    if not raw:
        return {}
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        raise ValueError(f"Airflow Variable {OWNER_EMAILS_VARIABLE} must be a JSON object (owner -> e-mail address)")
    return {str(k): str(v) for k, v in value.items()}


def deliver(run_id: str, report_file: Path | None = None, since: date | None = None) -> dict[str, Any]:
    """Deliver what the published marts ask for (nps.delivery) on the configured channels. Raises
    DeliveryFailed after logging when a message failed all its attempts: the task fails (and its own
    retries send what is still unsent) while the published marts stay as they are."""
    channels, conns = senders()
    if not channels:
        log.info("deliver: no delivery channel configured (Airflow connections %s, %s, %s): nothing sent",
                 SMTP_CONN_ID, SLACK_CONN_ID, TICKET_CONN_ID)
        return delivery.DeliveryResult(skipped="no delivery channel configured").as_dict()
    settings = delivery.Settings(
        report_to=_recipients(_extra(conns[delivery.EMAIL]).get("to")),
        owner_emails=owner_emails(),
        report_url=config.report_base_url(),
        report_file=report_file,
    )
    if settings.report_url and report_file is not None:
        settings.report_url = settings.report_url.rstrip("/") + "/" + report_file.name
    max_age = config.delivery_max_age_days()
    conn = warehouse.connect(application_name=f"nps deliver {run_id}"[:63])
    try:
        result = delivery.deliver(
            conn, settings, channels, run_id, since=since, attempts=config.delivery_attempts(),
            retry_seconds=config.delivery_retry_seconds(),
            max_age=timedelta(days=max_age) if max_age > 0 else None,
        )
    finally:
        conn.close()
    if result.skipped:
        log.info("deliver: %s", result.skipped)
    log.info("deliver: %d messages sent, %d keys already sent before, %d failed", len(result.sent),
             result.already_sent, len(result.failed))
    for failure in result.failed:
        log.error("deliver: not delivered via %s to %s: %s (%s)", failure["channel"], failure["target"],
                  ", ".join(failure["keys"]), failure["error"])
    if result.failed:
        raise delivery.DeliveryFailed(
            f"{len(result.failed)} of {len(result.failed) + len(result.sent)} messages could not be delivered "
            "(ops.delivery_log has the responses); the marts are published; the next run or a retry sends them")
    return result.as_dict()
