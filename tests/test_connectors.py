"""Source connectors against real counterparts: files on disk (CSV / JSON Lines / Parquet, other
encodings, a Qualtrics export), a Delighted-style HTTP API served on 127.0.0.1, and a CRM replica
in a second PostgreSQL database. Every case checks that nothing is lost:
rows read = loaded + quarantined + exact duplicates dropped."""

from __future__ import annotations

import csv
import io
import json
import threading
import urllib.parse
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from nps import sources, warehouse
from nps_airflow.connectors import SourceUnavailable
from nps_airflow.extract import SourceContractError
from nps_airflow.load import load_entity

JAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
NOW = datetime(2025, 6, 1, tzinfo=UTC)
COLUMNS = ["response_id", "survey_id", "survey_type", "trigger_event", "account_id", "contact_id",
           "channel", "sent_at", "responded_at", "score", "comment", "language"]


def _source(entity: str, **options) -> sources.EntitySource:
    options.setdefault("max_quarantine_share", 1.0)
    return sources.parse({"entities": {entity: options}}, origin="test").entity(entity)


def _load(conn, source, window=JAN, run_id="t1"):
    return load_entity(conn, source.entity, *window, run_id=run_id, source=source, now=NOW)


def _rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _response(rid: str, when: str, score="8", comment="fine", account="A1") -> dict:
    return dict(zip(COLUMNS, [rid, "S1", "relational", "quarterly", account, "C1", "email", when, when,
                              score, comment, "en"], strict=True))


def _nothing_lost(result) -> None:
    assert result.rows_read == result.rows_loaded + result.rows_quarantined + result.duplicates_dropped


# ---------------------------------------------------------------- configuration


def test_config_expands_env_vars_and_validates(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_DIR", str(tmp_path))
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = tmp_path / "sources.yml"
    path.write_text(
        "defaults: {max_quarantine_share: '${SHARE:-0.2}'}\n"
        "entities:\n"
        "  usage_daily: {connector: file, path: '${MY_DIR}/u/*.parquet'}\n"
        "  accounts: {connector: sql, url_env: CRM_URL, table: crm.accounts, watermark_column: updated_at}\n"
    )
    cfg = sources.load(path)
    usage = cfg.entity("usage_daily")
    assert usage.option("path") == f"{tmp_path}/u/*.parquet"
    assert usage.option("format") == "parquet" and usage.max_quarantine_share == 0.2
    assert cfg.entity("accounts").incremental_column == "updated_at"
    with pytest.raises(sources.SourceConfigError, match="no source configured for entity 'contacts'"):
        cfg.entity("contacts")
    with pytest.raises(sources.SourceConfigError, match="NOT_SET_ANYWHERE"):
        sources.parse({"entities": {"accounts": {"path": "${NOT_SET_ANYWHERE}/x.csv"}}})
    with pytest.raises(sources.SourceConfigError, match="needs 'table' or 'query'"):
        sources.parse({"entities": {"accounts": {"connector": "sql", "url": "postgresql://x/y"}}})


def test_default_sources_yml_reproduces_the_demo_layout(tmp_path):
    cfg = sources.load(sources.DEFAULT_CONFIG, sources_dir=tmp_path)
    for entity in ("survey_responses", "accounts", "contacts", "activities", "usage_daily", "survey_sends"):
        src = cfg.entity(entity)
        assert src.connector == "file" and src.option("partition_date") == "filename"
        assert src.option("path") == f"{tmp_path}/{entity}/{entity}_*.csv"


# ---------------------------------------------------------------- file drops


def test_jsonl_and_parquet_unpartitioned_with_drift(db_conn, tmp_path):
    rows = [_response("R1", "2025-01-05T10:00:00+00:00"), _response("R2", "2025-01-06T10:00:00+00:00"),
            _response("R3", "2025-02-06T10:00:00+00:00")]  # R3: another window
    (tmp_path / "a.jsonl").write_text(
        "\n".join(json.dumps({**r, "score": int(r["score"]), "wave": 7}) for r in rows[:2]) + "\n"
        + "{not json\n"
    )
    pd.DataFrame([rows[2]]).to_parquet(tmp_path / "b.parquet")
    src = _source("survey_responses", connector="file", path=str(tmp_path / "*.jsonl"), partition_date="none")
    result = _load(db_conn, src)
    assert result.rows_loaded == 2 and result.extra_columns == ["wave"]
    assert _rows(db_conn, "select rule, payload->>'_raw' from raw.quarantine") == [("invalid_json", "{not json")]
    assert _rows(db_conn, "select extras from raw.survey_responses where response_id = 'R1'") == [({"wave": "7"},)]
    _nothing_lost(result)

    frame = pd.DataFrame(rows)
    frame["responded_at"] = pd.to_datetime(frame["responded_at"], utc=True)
    frame["score"] = frame["score"].astype(int)
    frame.to_parquet(tmp_path / "all.parquet")
    src = _source("survey_responses", connector="file", path=str(tmp_path / "all.parquet"), partition_date="none")
    feb = (JAN[1], datetime(2025, 3, 1, tzinfo=UTC))
    result = _load(db_conn, src, window=feb)
    assert result.rows_loaded == 1
    assert _rows(db_conn, "select response_id, score from raw.survey_responses where responded_at >= '2025-02-01'"
                 ) == [("R3", 8)]


def test_declared_encoding_and_invalid_bytes_go_to_quarantine(db_conn, tmp_path):
    folder = tmp_path / "survey_responses"
    folder.mkdir()

    def csv_bytes(rows: list[dict], encoding: str = "utf-8") -> bytes:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().encode(encoding, errors="surrogateescape")

    good = _response("R1", "2025-01-05T10:00:00+00:00", comment="très bien, ça marche")
    (folder / "survey_responses_2025-01-05.csv").write_bytes(csv_bytes([good], "cp1252"))
    src = _source("survey_responses", connector="file", path=str(folder / "survey_responses_*.csv"),
                  encoding="cp1252")
    assert _load(db_conn, src).rows_loaded == 1
    assert _rows(db_conn, "select comment from raw.survey_responses") == [("très bien, ça marche",)]

    # UTF-8 declared, one line has a Latin-1 byte and one a NUL: only those two rows are quarantined
    (folder / "survey_responses_2025-01-06.csv").write_bytes(csv_bytes([
        _response("R2", "2025-01-06T10:00:00+00:00", comment="caf\udce9"),
        _response("R3", "2025-01-06T11:00:00+00:00", comment="a\x00b"),
        _response("R4", "2025-01-06T12:00:00+00:00", comment="naïve, ok"),
    ]))
    src = _source("survey_responses", connector="file", path=str(folder / "survey_responses_2025-01-06.csv"))
    result = _load(db_conn, src)
    assert result.rows_loaded == 1 and result.rows_quarantined == 2
    quarantined = _rows(db_conn, "select payload->>'response_id', rule, payload->>'comment', source_line"
                                 " from raw.quarantine order by 1")
    assert quarantined == [("R2", "invalid_encoding", "caf\\xe9", 2), ("R3", "invalid_encoding", "a\\x00b", 3)]
    _nothing_lost(result)


@pytest.mark.parametrize("layout", ["score_then_group", "group_then_score", "rating_between"])
def test_qualtrics_csv_export_preset(db_conn, tmp_path, layout):
    header = ["StartDate", "EndDate", "Status", "IPAddress", "Progress", "Duration (in seconds)", "Finished",
              "RecordedDate", "ResponseId", "RecipientLastName", "RecipientFirstName", "RecipientEmail",
              "ExternalReference", "LocationLatitude", "LocationLongitude", "DistributionChannel",
              "UserLanguage", "Q1", "Q1_NPS_GROUP", "Q2", "account_id", "survey_type"]
    text_row = ["Start Date", "End Date", "Response Type", "IP Address", "Progress", "Duration (in seconds)",
                "Finished", "Recorded Date", "Response ID", "Recipient Last Name", "Recipient First Name",
                "Recipient Email", "External Data Reference", "Location Latitude", "Location Longitude",
                "Distribution Channel", "User Language",
                "How likely are you to recommend Acme to a friend or colleague?",
                "How likely are you to recommend Acme to a friend or colleague? - Group",
                "What is the main reason for your score?", "account_id", "survey_type"]
    import_row = ['{"ImportId":"startDate","timeZone":"America/Denver"}',
                  '{"ImportId":"endDate","timeZone":"America/Denver"}', '{"ImportId":"status"}',
                  '{"ImportId":"ipAddress"}', '{"ImportId":"progress"}', '{"ImportId":"duration"}',
                  '{"ImportId":"finished"}', '{"ImportId":"recordedDate","timeZone":"America/Denver"}',
                  '{"ImportId":"_recordId"}', '{"ImportId":"recipientLastName"}',
                  '{"ImportId":"recipientFirstName"}', '{"ImportId":"recipientEmail"}',
                  '{"ImportId":"externalDataReference"}', '{"ImportId":"locationLatitude"}',
                  '{"ImportId":"locationLongitude"}', '{"ImportId":"distributionChannel"}',
                  '{"ImportId":"userLanguage"}', '{"ImportId":"QID1"}', '{"ImportId":"QID1_NPS_GROUP"}',
                  '{"ImportId":"QID2_TEXT"}', '{"ImportId":"account_id"}', '{"ImportId":"survey_type"}']

    def answer(rid, recorded, score, comment, account="A1"):
        return ["2025-01-05 09:58:00", recorded, "IP Address", "203.0.113.9", "100", "120", "True", recorded, rid,
                "Doe", "Jane", "jane@example.com", "C9", "39.7", "-104.9", "email", "EN", score,
                {"": ""}.get(score, "Promoter"), comment, account, "relational"]

    frame = pd.DataFrame([text_row, import_row,
                          answer("R_1abc", "2025-01-05 10:00:00", "9", "Great, but call +1 (415) 555-0132"),
                          answer("R_2def", "2025-01-31 20:00:00", "3", "slow,\nvery slow"),  # Feb 1 UTC
                          answer("R_3ghi", "2025-01-06 10:00:00", "", "no score"),
                          # exported with choice text instead of numeric values
                          answer("R_4jkl", "2025-01-07 10:00:00", "10 - Extremely likely", "love it"),
                          answer("R_5mno", "2025-01-07 11:00:00", "Extremely likely", "no number")],
                         columns=header)
    # exports differ in where the _NPS_GROUP companion sits; another closed question may come
    # between the NPS question and the comment
    if layout != "score_then_group":
        order = [c for c in header if c not in ("Q1", "Q1_NPS_GROUP")]
        order[order.index("Q2"):order.index("Q2")] = ["Q1_NPS_GROUP", "Q1"]
        frame = frame[order]
    if layout == "rating_between":
        frame.insert(frame.columns.get_loc("Q2"), "Q3", ["Ease of use", '{"ImportId":"QID3"}'] + ["4"] * 5)
    path = tmp_path / "NPS_Survey_January.csv"
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    src = _source("survey_responses", connector="file", path=str(path), mapping="qualtrics_csv")
    result = _load(db_conn, src)
    loaded = _rows(db_conn, "select response_id, account_id, contact_id, score, comment, channel, language,"
                            " survey_type, responded_at, extras from raw.survey_responses order by 1")
    assert [(r[0], r[3]) for r in loaded] == [("R_1abc", 9), ("R_4jkl", 10)]
    rid, account, contact, score, comment, channel, language, stype, responded, extras = loaded[0]
    assert (rid, account, contact, score, channel, language, stype) == ("R_1abc", "A1", "C9", 9, "email", "EN",
                                                                      "relational")
    assert comment == "Great, but call [phone]"
    assert responded == datetime(2025, 1, 5, 17, 0, tzinfo=UTC)  # Denver is UTC-7 in January
    assert "RecipientEmail" not in extras and "IPAddress" not in extras and extras["Finished"] == "True"
    assert extras.get("Q3") == ("4" if layout == "rating_between" else None)  # kept, not the comment
    assert _rows(db_conn, "select payload->>'response_id', rule, source_line from raw.quarantine order by 3"
                 ) == [("R_3ghi", "missing_score", 7), ("R_5mno", "non_numeric_score", 9)]  # R_2def spans 5-6
    assert result.rows_read == 4  # R_2def belongs to February (UTC)
    _nothing_lost(result)


def test_qualtrics_without_nps_question_names_the_problem(db_conn, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("RecordedDate,ResponseId,Q1,account_id\nRecorded Date,Response ID,Q,a\n{},{},{},{}\n"
                    "2025-01-05 10:00:00,R_1,9,A1\n")
    src = _source("survey_responses", connector="file", path=str(path), mapping="qualtrics_csv")
    with pytest.raises(SourceContractError, match="_NPS_GROUP"):
        _load(db_conn, src)
    db_conn.rollback()
    assert _rows(db_conn, "select count(*) from raw.load_audit") == [(0,)]


def test_mapping_override_missing_column_is_named(db_conn, tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame([_response("R1", "2025-01-05T10:00:00+00:00")]).rename(columns={"score": "nps"}).to_csv(path,
                                                                                                      index=False)
    src = _source("survey_responses", connector="file", path=str(path), mapping={"score": "rating"})
    with pytest.raises(SourceContractError, match=r"required column score \(source column rating\) missing in "
                                                  + str(path)):
        _load(db_conn, src)
    db_conn.rollback()
    src = _source("survey_responses", connector="file", path=str(path), mapping={"score": "nps"})
    assert _load(db_conn, src).rows_loaded == 1


def test_keep_original_comment_only_when_configured(db_conn, tmp_path):
    path = tmp_path / "r.csv"
    canary = "mail canary.person@example.org or +49 30 1234567"
    pd.DataFrame([_response("R1", "2025-01-05T10:00:00+00:00", comment=canary)]).to_csv(path, index=False)
    src = _source("survey_responses", connector="file", path=str(path))
    _load(db_conn, src)
    assert _rows(db_conn, "select count(*) from raw.survey_responses_original") == [(0,)]
    assert _rows(db_conn, "select comment from raw.survey_responses") == [("mail [email] or [phone]",)]
    src = _source("survey_responses", connector="file", path=str(path), keep_original_comment=True)
    _load(db_conn, src)
    assert _rows(db_conn, "select response_id, comment from raw.survey_responses_original") == [("R1", canary)]
    _load(db_conn, src)  # rerun: still one original
    assert _rows(db_conn, "select count(*) from raw.survey_responses_original") == [(1,)]
    _load(db_conn, _source("survey_responses", connector="file", path=str(path)))  # option off: purged
    assert _rows(db_conn, "select count(*) from raw.survey_responses_original") == [(0,)]


def test_concurrent_loads_of_one_interval_do_not_both_write(make_database, tmp_path):
    url = make_database()
    path = tmp_path / "r.csv"
    pd.DataFrame([_response(f"R{i}", "2025-01-05T10:00:00+00:00") for i in range(500)]).to_csv(path, index=False)
    src = _source("survey_responses", connector="file", path=str(path))
    errors: list[BaseException] = []

    def run(n: int) -> None:
        conn = warehouse.connect(url)
        try:
            _load(conn, src, run_id=f"c{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = warehouse.connect(url)
    try:
        assert _rows(conn, "select count(*), count(distinct response_id) from raw.survey_responses") == [(500, 500)]
        assert _rows(conn, "select count(*) from raw.load_audit where rows_loaded = 500") == [(3,)]
    finally:
        conn.close()


# ---------------------------------------------------------------- HTTP API


class _Delighted:
    """A Delighted-like API: basic auth, per_page/page, since/until (Unix s) or updated_since."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.failures: list[int] = []  # status codes to answer before the next real response
        self.requests: list[str] = []

    def handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                api.requests.append(self.path)
                if api.failures:
                    status = api.failures.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                import base64

                if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"sekret:").decode():
                    self.send_response(401)
                    self.end_headers()
                    return
                q = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}
                rows = api.records
                for param, field, op in (("since", "created_at", "ge"), ("until", "created_at", "lt"),
                                         ("updated_since", "updated_at", "ge")):
                    if param in q:
                        bound = int(q[param])
                        rows = [r for r in rows if (r[field] >= bound if op == "ge" else r[field] < bound)]
                # pagination styles: page/per_page (Delighted), offset/limit, cursor in an
                # envelope, a next link in the body, a Link header (GitHub)
                per_page = int(q.get("per_page", q.get("limit", 20)))
                if "offset" in q or "cursor" in q or q.get("style") == "envelope":
                    first = int(q.get("offset", q.get("cursor", 0)))
                else:
                    first = (int(q.get("page", 1)) - 1) * per_page
                chunk, more = rows[first: first + per_page], first + per_page < len(rows)
                document: object = chunk
                link = None
                if more:
                    nxt = dict(q, cursor=str(first + per_page)) if q.get("style") == "envelope" else \
                        dict(q, page=str(first // per_page + 2))
                    link = urllib.parse.urlsplit(self.path).path + "?" + urllib.parse.urlencode(nxt)
                if q.get("style") == "envelope":
                    document = {"data": chunk, "next_cursor": str(first + per_page) if more else None,
                                "links": {"next": link}}
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                if link and q.get("style") == "link":
                    self.send_header("Link", f'<http://{self.headers["Host"]}{link}>; rel="next", <x>; rel="last"')
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def delighted():
    api = _Delighted()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}/v1/survey_responses.json"
    yield api
    server.shutdown()
    server.server_close()


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _delighted_record(n: int, created: str, score=8, comment="ok", updated: str | None = None, **props) -> dict:
    return {
        "id": str(1000 + n), "score": score, "comment": comment, "permalink": f"https://x/r/{n}",
        "created_at": _epoch(created), "updated_at": _epoch(updated or created),
        "person": {"id": f"p{n}", "email": f"person{n}@example.com", "name": "Jane Roe", "created_at": 1},
        "person_properties": {"account_id": f"A{n % 3}", "survey_type": "relational", "locale": "de",
                              "Delighted Source": "email", **props},
        "notes": [], "tags": ["vip"] if n == 1 else [],
    }


def test_http_api_paginates_retries_and_maps_delighted(db_conn, delighted, monkeypatch):
    monkeypatch.setenv("DELIGHTED_API_KEY", "sekret")
    delighted.records = [_delighted_record(n, f"2025-01-{n + 1:02d}T10:00:00+00:00") for n in range(25)]
    delighted.records.append(_delighted_record(99, "2025-02-10T10:00:00+00:00"))  # another window
    delighted.records.append(_delighted_record(50, "2025-01-20T10:00:00+00:00", score=12))
    delighted.records.append(_delighted_record(51, "2025-01-21T10:00:00+00:00",
                                               comment="reach me at canary@example.net, +44 20 7946 0958"))
    delighted.failures = [429, 503]
    src = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                  pagination={"type": "page", "size": 10}, backoff_seconds=0.01)
    result = _load(db_conn, src)
    assert result.rows_read == 27 and result.rows_loaded == 26 and result.rows_quarantined == 1
    assert result.source_files == 3  # pages of 10, 10, 7
    assert len(delighted.requests) == 5  # 429 and 503 retried
    assert "since=" in delighted.requests[-1] and "until=" in delighted.requests[-1]
    row = _rows(db_conn, "select account_id, contact_id, score, language, channel, responded_at, extras"
                         " from raw.survey_responses where response_id = '1001'")
    assert row == [("A1", "p1", 8, "de", "email", datetime(2025, 1, 2, 10, tzinfo=UTC),
                    {"tags": '["vip"]', "updated_at": str(_epoch("2025-01-02T10:00:00+00:00")),
                     "person.created_at": "1", "notes": "[]"})]
    assert _rows(db_conn, "select comment from raw.survey_responses where response_id = '1051'"
                 ) == [("reach me at [email], [phone]",)]
    everything = json.dumps(_rows(db_conn, "select * from raw.survey_responses"), default=str)
    assert "example.com" not in everything and "Jane Roe" not in everything
    assert _rows(db_conn, "select payload->>'response_id', rule, source_file like '%page=3%' from raw.quarantine"
                 ) == [("1050", "score_out_of_range", True)]
    _nothing_lost(result)
    before = _rows(db_conn, "select * from raw.survey_responses order by response_id")
    _load(db_conn, src)  # rerun: identical table
    after = _rows(db_conn, "select * from raw.survey_responses order by response_id")
    assert [r[:-1] for r in before] == [r[:-1] for r in after]  # all but _loaded_at


@pytest.mark.parametrize(
    ("pagination", "extra"),
    [
        ({"type": "offset", "size": 10}, {}),
        ({"type": "cursor", "size": 10, "cursor_path": "next_cursor"},
         {"records_path": "data", "params": {"style": "envelope"}}),
        ({"type": "next_url", "size": 10, "next_url_path": "links.next"},
         {"records_path": "data", "params": {"style": "envelope", "limit": 10}}),
        ({"type": "link_header", "size": 10}, {"params": {"style": "link"}}),
    ],
    ids=["offset", "cursor", "next_url", "link_header"],
)
def test_http_pagination_styles_read_every_page(db_conn, delighted, monkeypatch, pagination, extra):
    monkeypatch.setenv("DELIGHTED_API_KEY", "sekret")
    delighted.records = [_delighted_record(n, f"2025-01-{n + 1:02d}T10:00:00+00:00") for n in range(25)]
    src = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                  pagination=pagination, backoff_seconds=0.01, **extra)
    result = _load(db_conn, src)
    assert result.rows_read == 25 and result.rows_loaded == 25 and result.source_files == 3
    assert _rows(db_conn, "select count(distinct response_id) from raw.survey_responses") == [(25,)]
    _nothing_lost(result)


def test_http_unknown_pagination_fails_before_any_request(db_conn, delighted):
    src = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                  pagination={"type": "pages"})
    with pytest.raises(ValueError, match="unknown pagination type 'pages'"):
        _load(db_conn, src)
    assert delighted.requests == []


def test_http_incremental_updated_since_upserts(db_conn, delighted, monkeypatch):
    monkeypatch.setenv("DELIGHTED_API_KEY", "sekret")
    delighted.records = [_delighted_record(1, "2024-12-30T10:00:00+00:00", score=3)]
    src = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                  incremental={"column": "updated_at", "from_param": "updated_since", "format": "unix"},
                  pagination={"type": "page", "size": 10}, backoff_seconds=0.01)
    dec = (datetime(2024, 12, 1, tzinfo=UTC), JAN[0])
    _load(db_conn, src, window=dec)
    # edited in January: the January run fetches it (updated_since) and replaces the December row
    delighted.records = [_delighted_record(1, "2024-12-30T10:00:00+00:00", score=9,
                                           updated="2025-01-03T08:00:00+00:00")]
    result = _load(db_conn, src)
    assert result.mode == "incremental" and result.rows_replaced == 1
    assert _rows(db_conn, "select response_id, score from raw.survey_responses") == [("1001", 9)]
    _load(db_conn, src)
    assert _rows(db_conn, "select count(*) from raw.survey_responses") == [(1,)]


def test_http_errors_are_clear(db_conn, delighted, monkeypatch):
    monkeypatch.setenv("DELIGHTED_API_KEY", "wrong")
    src = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                  backoff_seconds=0.01, retries=2)
    with pytest.raises(SourceUnavailable, match="HTTP 401 \\(check the credential\\)"):
        _load(db_conn, src)
    monkeypatch.setenv("DELIGHTED_API_KEY", "sekret")
    delighted.failures = [500, 500, 500]
    with pytest.raises(SourceUnavailable, match="failed after 3 attempts, last: HTTP 500"):
        _load(db_conn, src)
    # more pages than allowed: an error, not a silently truncated load
    delighted.records = [_delighted_record(n, f"2025-01-{n + 1:02d}T10:00:00+00:00") for n in range(25)]
    capped = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                     pagination={"type": "page", "size": 10, "max_pages": 2}, backoff_seconds=0.01)
    with pytest.raises(SourceUnavailable, match="more than max_pages=2 pages"):
        _load(db_conn, capped)
    db_conn.rollback()
    assert _rows(db_conn, "select count(*) from raw.load_audit") == [(0,)]


# ---------------------------------------------------------------- SQL source


def test_sql_source_with_watermark_from_a_second_database(db_conn, make_database, monkeypatch):
    crm_url = make_database("crm")
    crm = warehouse.connect(crm_url)
    with crm.cursor() as cur:
        cur.execute("""
            create schema crm;
            create table crm.account (
                id text, company text, industry text, region text, size_band text, plan text,
                arr numeric(14, 2), currency text, customer_since date, owner text,
                churned_at timestamp, modified timestamp, website text);
            insert into crm.account values
              ('A1', 'Acme', 'saas', 'emea', '51-200', 'pro', 12000.50, 'EUR', '2023-04-01', 'u1', null,
               '2025-01-03 09:00', 'acme.test'),
              ('A2', 'Beta', 'retail', 'na', '1-50', 'free', 0, 'USD', '2024-11-01', 'u2', null,
               '2025-01-20 12:00', null),
              ('A3', 'Gamma', 'saas', 'na', '1-50', 'pro', -5, 'USD', '2024-11-01', 'u2', null,
               '2025-02-02 12:00', null),
              (null, 'NoId', 'saas', 'na', '1-50', 'pro', 5, 'USD', '2024-11-01', 'u2', null,
               '2025-01-21 12:00', null);
        """)
    crm.commit()
    crm.close()
    monkeypatch.setenv("CRM_REPLICA_URL", warehouse.sqlalchemy_url(crm_url))
    src = sources.parse({"entities": {"accounts": {
        "connector": "sql", "url_env": "CRM_REPLICA_URL", "table": "crm.account", "watermark_column": "modified",
        "max_quarantine_share": 1.0,
        "mapping": {"account_id": "id", "name": "company", "employee_band": "size_band", "updated_at": "modified"},
    }}}, origin="test").entity("accounts")
    result = _load(db_conn, src)
    assert result.mode == "incremental" and result.rows_read == 3
    assert result.extra_columns == ["website"]
    assert _rows(db_conn, "select account_id, name, arr, customer_since::text, updated_at from raw.accounts"
                          " order by 1") == [
        ("A1", "Acme", pytest.approx(12000.50), "2023-04-01", datetime(2025, 1, 3, 9, tzinfo=UTC)),
        ("A2", "Beta", 0, "2024-11-01", datetime(2025, 1, 20, 12, tzinfo=UTC)),
    ]
    assert _rows(db_conn, "select rule from raw.quarantine") == [("missing_account_id",)]
    assert result.source_location.endswith("#crm.account")
    assert warehouse.redact_text("postgresql://crm:s3cret@replica:5432/crm") == "postgresql://crm:***@replica:5432/crm"
    _nothing_lost(result)
    before = _rows(db_conn, "select account_id, name, arr, updated_at, extras from raw.accounts order by 1")
    _load(db_conn, src)
    assert _rows(db_conn, "select account_id, name, arr, updated_at, extras from raw.accounts order by 1") == before


def test_sql_urls_as_users_write_them(db_conn):
    with_driver = warehouse.with_driver
    assert with_driver("postgresql://u:p@h:5432/crm?sslmode=require") == "postgresql+psycopg2://u:p@h:5432/crm?sslmode=require"
    assert with_driver("postgres://u@h/crm") == "postgresql+psycopg2://u@h/crm"  # Airflow's get_uri()
    assert with_driver("postgresql+psycopg2://u@h/crm") == "postgresql+psycopg2://u@h/crm"
    # a driver that is not installed: a clear error naming it, nothing written
    src = _source("activities", connector="sql", url="mysql://crm:secret@127.0.0.1/crm", table="activity")
    with pytest.raises(SourceUnavailable, match=r"driver for mysql://crm:\*\*\*@127.0.0.1/crm is not installed"):
        _load(db_conn, src)


def test_sql_source_window_mode_pushes_down_the_interval(db_conn, make_database):
    crm_url = make_database("crm")
    crm = warehouse.connect(crm_url)
    with crm.cursor() as cur:
        cur.execute("create table activity (activity_id text, account_id text, contact_id text, response_id text,"
                    " activity_type text, created_at timestamptz, outcome text)")
        cur.execute("insert into activity values ('X1','A1',null,null,'call','2025-01-04 10:00+00','reached'),"
                    " ('X2','A1',null,null,'email','2025-03-04 10:00+00','sent')")
    crm.commit()
    crm.close()
    src = _source("activities", connector="sql", url=warehouse.sqlalchemy_url(crm_url), table="activity")
    result = _load(db_conn, src)
    assert result.rows_read == 1 and result.mode == "window"
    assert _rows(db_conn, "select activity_id from raw.activities") == [("X1",)]


def test_http_auth_from_an_airflow_connection(db_conn, delighted, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DELIGHTED_API", json.dumps({"conn_type": "http", "password": "sekret"}))
    delighted.records = [_delighted_record(1, "2025-01-02T10:00:00+00:00")]
    src = _source("survey_responses", connector="http", url=delighted.url, mapping="delighted_json",
                  auth={"conn_id": "delighted_api", "basic": True})
    assert _load(db_conn, src).rows_loaded == 1


def test_generator_writes_through_the_file_connector(db_conn, tmp_path):
    from nps_airflow.connectors.file_drops import drop_writers

    writers = drop_writers(tmp_path)
    assert set(writers) == {"survey_responses", "accounts", "contacts", "activities", "usage_daily", "survey_sends"}
    frame = pd.DataFrame([_response("R1", "2025-01-05T10:00:00+00:00", comment='say "hi",\nbye')])
    path = writers["survey_responses"].write(frame, "2025-01-05")
    assert path == tmp_path / "survey_responses" / "survey_responses_2025-01-05.csv"
    result = load_entity(db_conn, "survey_responses", *JAN, run_id="g", sources_dir=tmp_path, now=NOW)
    assert result.rows_loaded == 1
    assert _rows(db_conn, "select comment from raw.survey_responses") == [('say "hi",\nbye',)]


def test_sources_check_is_a_dry_run_that_names_problems(tmp_path, monkeypatch, capsys):
    from nps.cli import main

    drops = tmp_path / "drops"
    drops.mkdir()
    rows = [_response("R1", "2025-01-05T10:00:00+00:00"), _response("R2", "2025-01-06T10:00:00+00:00", score="11")]
    pd.DataFrame(rows).assign(wave="w1").to_csv(drops / "survey_responses_2025-01-05.csv", index=False)
    pd.DataFrame([{"account_id": "A1", "usage_date": "2025-01-05"}]).to_csv(drops / "usage.csv", index=False)
    config_path = tmp_path / "sources.yml"
    config_path.write_text(
        "defaults: {max_quarantine_share: 0.6}\n"
        "entities:\n"
        f"  survey_responses: {{path: '{drops}/survey_responses_*.csv'}}\n"
        f"  usage_daily: {{path: '{drops}/usage.csv', partition_date: none}}\n"
    )
    monkeypatch.setenv("NPS_SOURCES_CONFIG", str(config_path))
    code = main(["sources", "check", "--start", "2025-01-01", "--end", "2025-02-01"])
    out = capsys.readouterr().out
    assert code == 1
    assert "read 2, would load 1, quarantine 1" in out and "score_out_of_range x1" in out
    assert "extra columns (kept in extras): wave" in out
    assert "usage_daily       ERROR" in out and "column active_users (source column active_users) missing" in out
    # CRM and usage are optional: a source left out is reported as not configured, not an error
    assert "accounts          ok    not configured in" in out and "no source configured" not in out
