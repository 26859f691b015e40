"""Delivery of the report, theme-alert tickets and SLA breaches through Airflow's providers, against
a real SMTP server (aiosmtpd) and a real HTTP server on 127.0.0.1, on the marts the session pipeline
published: what arrives equals what the marts ask for (read here with SQL of their own), a second
delivery and a rerun of the same night through Airflow send nothing new, a failing receiver is
retried, and what still fails is logged, fails the task and is sent by the next run while the
published marts stay as they were."""

from __future__ import annotations

import email
import json
import os
import re
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nps import delivery, orchestrate, report
from tests.conftest import query as _query

pytestmark = pytest.mark.integration

OWNER_EMAILS = {"Maya Chen": "maya.chen@example.com", "Lucas Ferreira": "lucas.ferreira@example.com",
                "Priya Natarajan": "priya.natarajan@example.com"}
REPORT_TO = ["cs-leads@example.com", "product-leads@example.com"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd handler: every message the server accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


class Receiver(ThreadingHTTPServer):
    """The Slack-compatible webhook (/slack) and the ticket webhook (/tickets): records each request;
    answers 503 to the next `fail_next` requests, or to all of them while `down`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.fail_next = 0
        self.down = False
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            failing = self.server.down or self.server.fail_next > 0
            if failing and not self.server.down:
                self.server.fail_next -= 1
            self.server.requests.append({"path": self.path, "headers": dict(self.headers),
                                         "body": json.loads(body), "answered": 503 if failing else 200})
            n = len(self.server.requests)
        if failing:
            self.send_response(503)
            answer = b'{"error": "ticket service unavailable"}'
        else:
            self.send_response(200)
            answer = b"ok" if self.path.startswith("/slack") else json.dumps({"ticket": f"TCK-{n}"}).encode()
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receivers(pipeline):
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    http = Receiver()
    threading.Thread(target=http.serve_forever, daemon=True).start()
    port = http.server_address[1]
    env = {
        "AIRFLOW_CONN_NPS_SMTP": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
            "extra": {"from_email": "nps@example.com", "to": ", ".join(REPORT_TO), "disable_tls": True,
                      "disable_ssl": True, "retry_limit": 0, "timeout": 10}}),
        "AIRFLOW_CONN_NPS_SLACK_WEBHOOK": json.dumps({
            "conn_type": "slackwebhook", "password": f"http://127.0.0.1:{port}/slack/T000/B000/XXXX"}),
        "AIRFLOW_CONN_NPS_TICKET_WEBHOOK": json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http",
            "extra": {"endpoint": "/tickets"}}),
        "AIRFLOW_VAR_NPS_OWNER_EMAILS": json.dumps(OWNER_EMAILS),
        "NPS_DELIVERY_MAX_AGE_DAYS": "0",  # the small set is 2025's: no "history" limit here
        "NPS_DELIVERY_RETRY_SECONDS": "0.05",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield mailbox, http
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    http.shutdown()
    smtp.stop()


def _last_window(pipeline) -> tuple[date, date]:
    manifest = pipeline[2]
    return list(orchestrate.quarter_windows(date.fromisoformat(manifest["start"]),
                                            date.fromisoformat(manifest["end"])))[-1]


def _deliver(pipeline, run_id: str = "test-delivery") -> dict:
    """The deliver stage as the last quarter's run calls it (its new alerts: the quarter's months)."""
    from nps_airflow import stages

    start = _last_window(pipeline)[0]
    return stages.deliver(run_id, {"paths": []}, datetime(start.year, start.month, start.day, tzinfo=UTC))


def _execute(url: str, sql: str, params: dict) -> None:
    from nps import warehouse

    with warehouse.transaction(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)


def _marts_day(url: str) -> date:
    as_of = _query(url, "select as_of from ops.published_builds order by publish_id desc limit 1").iloc[0, 0]
    return (as_of.astimezone(UTC) - timedelta(microseconds=1)).date()


def _log(url: str):
    return _query(url, "select * from ops.delivery_log order by delivery_key, channel")


def _tickets(http: Receiver, answered: int = 200) -> list[dict]:
    return [r for r in http.requests if r["path"] == "/tickets" and r["answered"] == answered]


def _keys(msg: EmailMessage) -> set[str]:
    return {k.strip() for k in msg["X-NPS-Delivery-Keys"].split(",")}


def test_what_arrives_is_what_the_marts_ask_for(pipeline, receivers):
    url = pipeline[0]
    mailbox, http = receivers
    result = _deliver(pipeline)
    assert not result["failed"] and result["already_sent"] == 0
    day = _marts_day(url)

    # the report: one e-mail to the recipients, one digest on the webhook
    reports = [(to, m) for to, m in mailbox.messages if _keys(m) == {f"report:{day.isoformat()}"}]
    assert len(reports) == 1 and sorted(reports[0][0]) == sorted(REPORT_TO)
    assert reports[0][1]["Subject"] == f"NPS morning report {day.isoformat()}"
    digests = [r for r in http.requests if r["path"].startswith("/slack") and "morning report" in r["body"]["text"]]
    assert len(digests) == 1

    # a ticket per new alert of the quarter's months, with the mart's numbers
    first = _last_window(pipeline)[0]
    alerts = _query(url, "select * from marts.theme_alerts where is_new_alert "
                         f"and month_start between '{first.isoformat()}' and '{day.replace(day=1).isoformat()}'")
    assert len(alerts) > 0, "the small set's last quarter has new theme alerts"
    tickets = _tickets(http)
    assert len(tickets) == len(alerts)
    by_key = {t["body"]["delivery_key"]: t for t in tickets}
    for alert in alerts.itertuples():
        ticket = by_key[f"theme_alert:{alert.month_start.isoformat()}:{alert.theme_level}:{alert.theme_id}"]["body"]
        assert (ticket["theme_label"], ticket["detractor_mentions"], ticket["accounts_affected"]) == (
            alert.theme_label, alert.detractor_mentions, alert.accounts_affected)
        assert ticket["sample_response_ids"] == list(alert.sample_response_ids)
    assert len({t["headers"]["Idempotency-Key"] for t in tickets}) == len(tickets)

    # every detractor past its SLA, to its owner: by e-mail where the owner has an address, else the webhook
    breached = _query(url, "select response_id, account_owner from marts.detractor_queue where is_sla_breached")
    assert len(breached) > 0, "the small set has detractors past their SLA at its end"
    by_mail = {}
    for to, m in mailbox.messages:
        for key in _keys(m):
            if key.startswith("sla_breach:"):
                by_mail[key.removeprefix("sla_breach:")] = to
    by_hook = {}
    for r in http.requests:
        if r["path"].startswith("/slack") and "past the follow-up SLA" in r["body"]["text"]:
            owner = r["body"]["text"].split(":", 1)[0]
            for response_id in re.findall(r"response (\S+), score", r["body"]["text"]):
                by_hook[response_id] = owner
    for row in breached.itertuples():
        if row.account_owner in OWNER_EMAILS:
            assert by_mail.get(row.response_id) == [OWNER_EMAILS[row.account_owner]], row
        else:
            assert by_hook.get(row.response_id) == row.account_owner, row
    assert set(by_mail) | set(by_hook) == set(breached["response_id"])
    assert not set(by_mail) & set(by_hook)

    log = _log(url)
    assert (log["status"] == "sent").all() and (log["attempts"] == 1).all()
    assert len(log) == 2 + len(alerts) + len(breached)


def test_a_second_delivery_sends_nothing(pipeline, receivers):
    mailbox, http = receivers
    before = (len(mailbox.messages), len(http.requests))
    result = _deliver(pipeline)
    assert result["sent"] == [] and result["already_sent"] > 0
    assert (len(mailbox.messages), len(http.requests)) == before


def _webhook_keys(url: str) -> set[str]:
    return set(_log(url).query("channel in ('slack', 'ticket')")["delivery_key"])


def test_a_failing_receiver_is_retried(pipeline, receivers):
    url = pipeline[0]
    _, http = receivers
    key = f"report:{_marts_day(url).isoformat()}"
    # as if the digest had not gone to the webhook yet
    _execute(url, "delete from ops.delivery_log where delivery_key = %(key)s and channel = 'slack'", {"key": key})
    http.fail_next = 2
    result = _deliver(pipeline)
    assert [(s["channel"], s["keys"]) for s in result["sent"]] == [("slack", [key])] and not result["failed"]
    row = _log(url).query("delivery_key == @key and channel == 'slack'").iloc[0]
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert row["response"] == "200 ok"
    assert [r["answered"] for r in http.requests[-3:]] == [503, 503, 200]


def test_what_still_fails_is_logged_and_sent_by_the_next_run(pipeline, receivers):
    """The webhooks down through every attempt: the delivery logs each failure with its response and
    fails; the marts stay published; a rerun of the same night through Airflow sends what failed and
    nothing else."""
    from nps_airflow import deliver as channels

    url = pipeline[0]
    mailbox, http = receivers
    keys = _webhook_keys(url)
    assert any(k.startswith("theme_alert:") for k in keys) and any(k.startswith("sla_breach:") for k in keys)
    # as if nothing had gone to the webhooks yet
    _execute(url, "delete from ops.delivery_log where channel in ('slack', 'ticket')", {})
    published = _query(url, "select count(*) from ops.published_builds").iloc[0, 0]
    marts_before = _query(url, "select count(*), sum(detractor_mentions) from marts.theme_alerts")

    http.down = True
    try:
        with pytest.raises(delivery.DeliveryFailed, match="could not be delivered"):
            start = _last_window(pipeline)[0]
            channels.deliver("test-delivery-down", since=start)
    finally:
        http.down = False
    failed = _log(url).query("channel in ('slack', 'ticket')")
    assert set(failed["delivery_key"]) == keys
    assert (failed["status"] == "failed").all() and (failed["attempts"] == 3).all()
    assert failed["response"].str.contains("503").all()
    assert (_log(url).query("channel == 'email'")["status"] == "sent").all()
    assert _query(url, "select count(*) from ops.published_builds").iloc[0, 0] == published
    assert _query(url, "select count(*), sum(detractor_mentions) from marts.theme_alerts").equals(marts_before)

    # the owner calls one of the detractors delivered to them: the CRM logs it on the last day
    day = _marts_day(url)
    called = _log(url).query("kind == 'sla_breach' and channel == 'email'").iloc[0]
    response_id = called["delivery_key"].removeprefix("sla_breach:")
    account_id = called["payload"]["account_id"]
    drop = pipeline[1] / "activities" / f"activities_{day.isoformat()}.csv"
    original = drop.read_text()
    called_at = f"{day.isoformat()}T22:30:00+00:00"
    drop.write_text(original.rstrip("\n") + f"\nACT9990001,{account_id},,{response_id},call,{called_at},reached\n")
    try:
        # the same night again, through Airflow: what failed goes out (the tickets of every month of
        # the quarter, though this night's interval holds September only), nothing else does
        mails, requests = len(mailbox.messages), len(http.requests)
        outcome = orchestrate.run_window(day, day + timedelta(days=1))
        assert outcome.state == "success"
        assert len(mailbox.messages) == mails
        new = http.requests[requests:]
        assert new and all(r["answered"] == 200 for r in new)
        log = _log(url)
        assert (log["status"] == "sent").all()
        assert set(log[log["run_id"] == outcome.run_id]["delivery_key"]) == keys
        assert _marts_day(url) == day

        # closing the loop: the call shows up in the next report as "followed up"
        assert response_id not in set(_query(url, "select response_id from marts.detractor_queue")["response_id"])
        rendered, _ = report.publish_report(out=pipeline[1].parent / "loop.html")
        followed = {r["response_id"]: r for r in rendered.data["followed_up"]}
        assert datetime.fromisoformat(followed[response_id]["first_follow_up_at"]) == datetime.fromisoformat(called_at)
        open_ids = {r for r, row in followed.items() if row["first_follow_up_at"] is None}
        queue = set(_query(url, "select response_id from marts.detractor_queue where is_sla_breached")["response_id"])
        assert open_ids <= queue
        assert "ACT9990001" not in original
    finally:
        drop.write_text(original)
        # the session's sources as they were, and the marts made from them (nothing more is sent); the
        # call leaves the file again, a loss the load refuses unless told
        sent = len(mailbox.messages), len(http.requests)
        orchestrate.run_window(day, day + timedelta(days=1), conf={"accept_row_loss": True})
        assert (len(mailbox.messages), len(http.requests)) == sent
