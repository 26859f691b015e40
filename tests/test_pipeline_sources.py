"""The nightly DAG on a team's own sources, not the demo layout: survey responses from a Qualtrics
CSV export, accounts from a CRM replica (a second PostgreSQL database, by watermark), contacts
from an HTTP API on 127.0.0.1 (offset pages, updated-since), activities and usage from file drops
— one `nps_nightly` run through `dag.test()` for January, checked against pandas on the
generator's own files."""

from __future__ import annotations

import csv
import json
import os
import threading
import urllib.parse
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from nps import orchestrate, warehouse
from tests.conftest import query
from tests.reference import load_sources

JAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
DENVER = ZoneInfo("America/Denver")


def _read_csvs(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(folder.glob("*.csv"))],
                     ignore_index=True)


def _qualtrics_export(responses: pd.DataFrame, path: Path) -> None:
    """The generator's responses as a Qualtrics CSV export: 3 header rows, RecordedDate in the
    survey's time zone, the NPS group companion first (as the API orders it), embedded data."""
    header = ["StartDate", "RecordedDate", "ResponseId", "RecipientEmail", "ExternalReference",
              "DistributionChannel", "UserLanguage", "SurveyID", "Q1_NPS_GROUP", "Q1", "Q2",
              "account_id", "survey_type", "trigger_event", "sent_at"]
    text = ["Start Date", "Recorded Date", "Response ID", "Recipient Email", "External Data Reference",
            "Distribution Channel", "User Language", "Survey ID", "How likely ...? - Group",
            "How likely are you to recommend us?", "What is the main reason for your score?",
            "account_id", "survey_type", "trigger_event", "sent_at"]
    ids = [{"ImportId": "startDate", "timeZone": "America/Denver"},
           {"ImportId": "recordedDate", "timeZone": "America/Denver"}, {"ImportId": "_recordId"},
           {"ImportId": "recipientEmail"}, {"ImportId": "externalDataReference"},
           {"ImportId": "distributionChannel"}, {"ImportId": "userLanguage"}, {"ImportId": "surveyId"},
           {"ImportId": "QID1_NPS_GROUP"}, {"ImportId": "QID1"}, {"ImportId": "QID2_TEXT"},
           {"ImportId": "account_id"}, {"ImportId": "survey_type"}, {"ImportId": "trigger_event"},
           {"ImportId": "sent_at"}]

    def local(value: str) -> str:
        try:  # a row the generator broke on purpose keeps its broken text
            return datetime.fromisoformat(value).astimezone(DENVER).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return value

    def group(score: str) -> str:
        if not score.isdigit():
            return ""
        return "Promoter" if int(score) >= 9 else "Passive" if int(score) >= 7 else "Detractor"

    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        out = csv.writer(fh)
        out.writerows([header, text, [json.dumps(i) for i in ids]])
        for r in responses.itertuples():
            out.writerow([local(r.responded_at), local(r.responded_at), r.response_id, "someone@example.com",
                          r.contact_id, r.channel, r.language, r.survey_id, group(r.score), r.score, r.comment,
                          r.account_id, r.survey_type, r.trigger_event, r.sent_at])


def _crm_replica(url: str, accounts: pd.DataFrame) -> None:
    """A CRM's account table: the latest version of each account, its own column names."""
    latest = accounts[accounts["updated_at"] < JAN[1].isoformat()].sort_values("updated_at")
    latest = latest.groupby("account_id").tail(1)
    conn = warehouse.connect(url)
    with conn.cursor() as cur:
        cur.execute("""create table crm_account (id text primary key, company text, industry text,
                       region text, size_band text, plan text, arr numeric, currency text,
                       customer_since date, owner text, churned_at timestamptz, modified timestamptz)""")
        for r in latest.itertuples():
            cur.execute("insert into crm_account values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        (r.account_id, r.name, r.industry, r.region, r.employee_band, r.plan, r.arr or None,
                         r.currency, r.customer_since or None, r.owner, r.churned_at or None, r.updated_at))
    conn.commit()
    conn.close()


class _ContactsApi:
    """GET /contacts?offset=&limit=&updated_since=&updated_until= with a bearer token."""

    def __init__(self, contacts: pd.DataFrame) -> None:
        self.records = contacts.to_dict("records")

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.headers.get("Authorization") != "Bearer crm-token":
                    self.send_response(401)
                    self.end_headers()
                    return
                q = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}
                lo, hi = datetime.fromisoformat(q["updated_since"]), datetime.fromisoformat(q["updated_until"])
                rows = [r for r in api.records if lo <= datetime.fromisoformat(r["updated_at"]) < hi]
                offset, limit = int(q["offset"]), int(q["limit"])
                body = json.dumps({"data": rows[offset:offset + limit]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture(scope="module")
def own_sources_run(make_database, small_sources, tmp_path_factory):
    sources, _ = small_sources
    work = tmp_path_factory.mktemp("own_sources")
    exports = work / "qualtrics"
    exports.mkdir()
    responses = _read_csvs(sources / "survey_responses")
    # January plus the first days of February: the run keeps its own window only
    in_file = responses[responses["responded_at"] < "2025-02-05"]
    _qualtrics_export(in_file, exports / "NPS_Relationship_export.csv")
    crm_url = make_database("crm")
    _crm_replica(crm_url, _read_csvs(sources / "accounts"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ContactsApi(_read_csvs(sources / "contacts")).handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = work / "sources.yml"
    config.write_text(f"""
defaults:
  max_quarantine_share: 0.2
entities:
  survey_responses:
    connector: file
    path: {exports}/*.csv
    mapping: qualtrics_csv
  accounts:
    connector: sql
    url_env: TEST_CRM_URL
    table: crm_account
    watermark_column: modified
    mapping: {{account_id: id, name: company, employee_band: size_band, updated_at: modified}}
  contacts:
    connector: http
    url: http://127.0.0.1:{server.server_address[1]}/contacts
    records_path: data
    auth: {{header: Authorization, prefix: "Bearer ", env: TEST_CRM_TOKEN}}
    pagination: {{type: offset, size: 50}}
    incremental: {{column: updated_at, from_param: updated_since, to_param: updated_until, format: iso}}
  activities:
    connector: file
    path: ${{NPS_SOURCES_DIR}}/activities/activities_*.csv
  usage_daily:
    connector: file
    path: ${{NPS_SOURCES_DIR}}/usage_daily/usage_daily_*.csv
""")
    url = make_database("nps_own_sources")
    env = {warehouse.URL_ENV: url, "NPS_SOURCES_DIR": str(sources), "NPS_SOURCES_CONFIG": str(config),
           "TEST_CRM_URL": crm_url, "TEST_CRM_TOKEN": "crm-token"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        orchestrate.run_window(date(2025, 1, 1), date(2025, 2, 1))
        yield url, sources, in_file
    finally:
        server.shutdown()
        server.server_close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_every_january_response_of_the_export_is_loaded_or_quarantined(own_sources_run):
    url, sources, in_file = own_sources_run
    expected = load_sources(sources, *JAN).responses
    raw = query(url, "select response_id, score, responded_at, comment, contact_id from raw.survey_responses")
    assert sorted(raw["response_id"]) == sorted(expected["response_id"])
    merged = raw.merge(expected, on="response_id", suffixes=("", "_src"))
    assert (merged["score"] == merged["score_src"].astype(int)).all()
    # RecordedDate was Denver local time in the export: back to the same UTC instant
    assert (pd.to_datetime(merged["responded_at"], utc=True) == pd.to_datetime(merged["responded_at_src"],
                                                                              utc=True)).all()
    quarantined = query(url, "select count(*) as n from raw.quarantine where entity = 'survey_responses'")["n"][0]
    audit = query(url, "select rows_read, rows_loaded, rows_quarantined, duplicates_dropped from raw.load_audit"
                       " where entity = 'survey_responses'")
    assert len(audit) == 1
    a = audit.iloc[0]
    assert a.rows_read == a.rows_loaded + a.rows_quarantined + a.duplicates_dropped
    assert a.rows_loaded == len(expected) and a.rows_quarantined == quarantined
    assert not query(url, "select 1 from raw.survey_responses where comment ~* '[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}'"
                     ).shape[0]


def test_crm_from_sql_and_http_reach_the_warehouse(own_sources_run):
    url, sources, _ = own_sources_run
    contacts = load_sources(sources, *JAN).contacts
    got = query(url, "select account_id, plan, owner from raw.accounts")
    accounts = _read_csvs(sources / "accounts")
    latest = accounts[accounts["updated_at"] < JAN[1].isoformat()].sort_values("updated_at").groupby(
        "account_id").tail(1)
    assert sorted(got["account_id"]) == sorted(latest["account_id"])
    assert dict(zip(got["account_id"], got["plan"], strict=True)) == dict(
        zip(latest["account_id"], latest["plan"], strict=True))
    assert set(query(url, "select contact_id from raw.contacts")["contact_id"]) == set(contacts["contact_id"])


def test_january_nps_matches_pandas(own_sources_run):
    url, sources, _ = own_sources_run
    r = load_sources(sources, *JAN).responses
    score = r["score"].astype(int)
    expected_nps = 100.0 * ((score >= 9).sum() - (score <= 6).sum()) / len(r)
    row = query(url, "select responses, nps from marts.nps_by_segment where period_grain = 'month'"
                     " and period_start = '2025-01-01' and segment_type = 'overall'")
    assert len(row) == 1
    assert row["responses"][0] == len(r)
    assert float(row["nps"][0]) == pytest.approx(expected_nps, abs=1e-9)
    by_type = query(url, "select segment_value, responses from marts.nps_by_segment where period_grain = 'month'"
                         " and period_start = '2025-01-01' and segment_type = 'survey_type'")
    assert dict(zip(by_type["segment_value"], by_type["responses"], strict=True)) == r["survey_type"].value_counts(
    ).to_dict()
    themed = query(url, "select count(*) as n from nlp.comment_themes where theme_id is not null")["n"][0]
    assert themed > 0.5 * (r["comment"].fillna("") != "").sum()
