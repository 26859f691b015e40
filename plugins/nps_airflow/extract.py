"""Extract + load: source file drops -> raw.* for one data interval.

One call loads one entity for one window `[start, end)` in one transaction:

1. read the file drops that can hold rows of the window (CSV, one file per day, see
   docs/contracts.md section 1) and keep the rows whose interval column falls in the window;
2. validate every row against the contract; contract breakers go to `raw.quarantine` with the raw
   payload, the rule broken and the file/line they came from; exact duplicates are dropped;
3. COPY the good rows into a temporary table, delete the window from the raw table, move the rows
   in (a rerun replaces, never duplicates), quarantine ids that already exist in another window;
4. write a `raw.load_audit` row, commit — then fail loudly if too much was quarantined.

An advisory lock per entity serialises concurrent loads of the same entity.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from nps import config, warehouse

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

# Column kinds: how a source string is validated and what it becomes.
TEXT, TIMESTAMP, DATE, INT, SCORE, NUMERIC = "text", "timestamp", "date", "int", "score", "numeric"


@dataclass(frozen=True)
class EntitySpec:
    table: str
    key: tuple[str, ...]
    interval_column: str
    columns: dict[str, str]
    required: frozenset[str]
    pii_text_columns: tuple[str, ...] = ()


SPECS: dict[str, EntitySpec] = {
    "survey_responses": EntitySpec(
        table="raw.survey_responses",
        key=("response_id",),
        interval_column="responded_at",
        columns={
            "response_id": TEXT, "survey_id": TEXT, "survey_type": TEXT, "trigger_event": TEXT,
            "account_id": TEXT, "contact_id": TEXT, "channel": TEXT, "sent_at": TIMESTAMP,
            "responded_at": TIMESTAMP, "score": SCORE, "comment": TEXT, "language": TEXT,
        },
        required=frozenset({"response_id", "account_id", "responded_at", "score"}),
        pii_text_columns=("comment",),
    ),
    "accounts": EntitySpec(
        table="raw.accounts",
        key=("account_id", "updated_at"),
        interval_column="updated_at",
        columns={
            "account_id": TEXT, "name": TEXT, "industry": TEXT, "region": TEXT,
            "employee_band": TEXT, "plan": TEXT, "arr": NUMERIC, "currency": TEXT,
            "customer_since": DATE, "owner": TEXT, "churned_at": TIMESTAMP, "updated_at": TIMESTAMP,
        },
        required=frozenset({"account_id", "updated_at"}),
    ),
    "contacts": EntitySpec(
        table="raw.contacts",
        key=("contact_id", "updated_at"),
        interval_column="updated_at",
        columns={
            "contact_id": TEXT, "account_id": TEXT, "email": TEXT, "full_name": TEXT, "role": TEXT,
            "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
        },
        required=frozenset({"contact_id", "account_id", "updated_at"}),
    ),
    "activities": EntitySpec(
        table="raw.activities",
        key=("activity_id",),
        interval_column="created_at",
        columns={
            "activity_id": TEXT, "account_id": TEXT, "contact_id": TEXT, "response_id": TEXT,
            "activity_type": TEXT, "created_at": TIMESTAMP, "outcome": TEXT,
        },
        required=frozenset({"activity_id", "account_id", "created_at"}),
    ),
    "usage_daily": EntitySpec(
        table="raw.usage_daily",
        key=("account_id", "usage_date"),
        interval_column="usage_date",
        columns={
            "account_id": TEXT, "usage_date": DATE, "active_users": INT, "sessions": INT,
            "core_events": INT,
        },
        required=frozenset({"account_id", "usage_date"}),
    ),
}
assert set(SPECS) == set(config.ENTITIES)

_FILE_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


class SourceContractError(ValueError):
    """The source cannot be loaded at all (e.g. a required column is missing)."""


class QuarantineThresholdExceeded(RuntimeError):
    """Too large a share of a batch broke the contract; the good rows were loaded."""


@dataclass
class LoadResult:
    entity: str
    start: datetime
    end: datetime
    source_files: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    duplicates_dropped: int
    rows_replaced: int
    checksum: str
    extra_columns: list[str]
    duration_s: float

    def as_dict(self) -> dict:
        d = self.__dict__.copy()
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


# ---------------------------------------------------------------- reading


def files_for_window(entity_dir: Path, start: datetime, end: datetime) -> list[Path]:
    """Files that may hold rows of the window: dated files within [start - 1 day, end + 1 day]
    (a day of slack either side for time zones and late drops), plus any undated file."""
    lo, hi = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
    chosen = []
    for path in sorted(entity_dir.glob("*.csv")):
        match = _FILE_DATE.search(path.name)
        if match is None or lo <= date.fromisoformat(match.group(1)) <= hi:
            chosen.append(path)
    return chosen


def read_drops(paths: list[Path]) -> pd.DataFrame:
    """All files as strings, with their file and 1-based data line number kept for quarantine."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
        frame["_source_file"] = str(path)
        # header is line 1; multi-line quoted fields make this a record number, good enough to find it
        frame["_source_line"] = range(2, len(frame) + 2)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["_source_file", "_source_line"])
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- validation


def _parse_timestamps(values: pd.Series) -> pd.Series:
    blank = values.str.strip() == ""
    parsed = pd.to_datetime(values.where(~blank), errors="coerce", utc=True, format="ISO8601")
    return parsed


def validate(frame: pd.DataFrame, spec: EntitySpec, settings: config.LoadSettings, now: datetime
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (good, quarantined). Good rows have normalised string values ready for COPY;
    quarantined rows carry `rule` and `detail`."""
    good = frame.copy()
    problems = pd.Series("", index=frame.index)
    details = pd.Series("", index=frame.index)

    def flag(mask: pd.Series, rule: str, detail: pd.Series | str) -> None:
        new = mask & (problems == "")
        problems[new] = rule
        details[new] = detail if isinstance(detail, str) else detail[new]

    for column in sorted(spec.required):
        flag(frame[column].str.strip() == "", f"missing_{column}", f"{column} is empty")

    future_limit = pd.Timestamp(now) + pd.Timedelta(hours=settings.future_tolerance_hours)
    # the interval column first, so a row with a broken timestamp is reported for that column
    ordered = sorted(spec.columns.items(), key=lambda item: item[0] != spec.interval_column)
    for column, kind in ordered:
        raw = frame[column]
        blank = raw.str.strip() == ""
        if kind == TIMESTAMP:
            parsed = _parse_timestamps(raw)
            flag(~blank & parsed.isna(), f"unparseable_{column}", "cannot parse: " + raw)
            flag(parsed > future_limit, f"future_{column}", "in the future: " + raw)
            good[column] = parsed.dt.strftime("%Y-%m-%d %H:%M:%S.%f+00").where(parsed.notna(), "")
        elif kind == DATE:
            parsed = pd.to_datetime(raw.where(~blank), errors="coerce", format="%Y-%m-%d")
            flag(~blank & parsed.isna(), f"unparseable_{column}", "cannot parse: " + raw)
            flag(parsed > pd.Timestamp(now.date()) + pd.Timedelta(days=1), f"future_{column}",
                 "in the future: " + raw)
            good[column] = parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), "")
        elif kind in (INT, SCORE, NUMERIC):
            number = pd.to_numeric(raw.where(~blank), errors="coerce")
            flag(~blank & number.isna(), f"non_numeric_{column}", "not a number: " + raw)
            if kind in (INT, SCORE):
                flag(number.notna() & (number != number.round()), f"non_integer_{column}",
                     "not an integer: " + raw)
                whole = number.where(number == number.round())
                good[column] = whole.astype("Int64").astype(str).where(whole.notna(), "")
            if kind == SCORE:
                flag((number < 0) | (number > 10), f"{column}_out_of_range", "outside 0-10: " + raw)
            if kind == INT:
                flag(number < 0, f"negative_{column}", "negative: " + raw)
        elif kind == TEXT and column in spec.pii_text_columns:
            flag(raw.str.len() > settings.max_comment_chars, f"{column}_too_long",
                 f"longer than {settings.max_comment_chars} characters")

    bad_mask = problems != ""
    quarantined = frame[bad_mask].copy()
    quarantined["rule"] = problems[bad_mask]
    quarantined["detail"] = details[bad_mask].str.slice(0, 500)
    return good[~bad_mask], quarantined


def split_duplicates(good: pd.DataFrame, spec: EntitySpec, data_columns: list[str]
                     ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Exact duplicates (same key, same content) collapse to one row; rows sharing a key with
    different content are all quarantined, since nothing says which one is right."""
    key = list(spec.key)
    exact = good.duplicated(subset=data_columns, keep="first")
    deduped = good[~exact]
    conflicting = deduped.duplicated(subset=key, keep=False)
    conflicts = deduped[conflicting].copy()
    conflicts["rule"] = "duplicate_id_different_content"
    conflicts["detail"] = "same " + ", ".join(key) + " with different values in this batch"
    return deduped[~conflicting], conflicts, int(exact.sum())


# ---------------------------------------------------------------- loading


def _payload(row: pd.Series, columns: list[str]) -> str:
    return json.dumps({c: row[c] for c in columns}, ensure_ascii=False)


def _quarantine(cur, quarantined: pd.DataFrame, entity: str, run_id: str, start: datetime,
                end: datetime, payload_columns: list[str]) -> None:
    if quarantined.empty:
        return
    from psycopg2.extras import execute_values

    rows = [
        (entity, run_id, start, end, r["_source_file"], int(r["_source_line"]), r["rule"],
         r["detail"], _payload(r, payload_columns))
        for _, r in quarantined.iterrows()
    ]
    execute_values(
        cur,
        "insert into raw.quarantine (entity, run_id, interval_start, interval_end, source_file,"
        " source_line, rule, detail, payload) values %s",
        rows,
    )


def load_entity(conn: PgConnection, entity: str, start: datetime, end: datetime, run_id: str, *,
                sources_dir: Path | None = None, settings: config.LoadSettings | None = None,
                now: datetime | None = None) -> LoadResult:
    """Load one entity for the window [start, end) and commit. See the module docstring."""
    from nlp.text import redact_pii  # one PII scrubber for loader and theme engine

    t0 = time.monotonic()
    spec = SPECS[entity]
    settings = settings or config.LoadSettings()
    now = now or datetime.now(UTC)
    sources_dir = sources_dir or config.sources_dir()
    entity_dir = sources_dir / entity
    if not entity_dir.is_dir():
        raise SourceContractError(f"{entity}: source folder {entity_dir} does not exist")

    paths = files_for_window(entity_dir, start, end)
    frame = read_drops(paths)
    data_columns = list(spec.columns)
    if paths:
        missing = [c for c in data_columns if c not in frame.columns]
        if missing:
            raise SourceContractError(
                f"{entity}: required column(s) {', '.join(missing)} missing in {entity_dir} "
                f"(files {', '.join(p.name for p in paths[:3])}...); nothing was loaded"
            )
    else:
        frame = pd.DataFrame(columns=[*data_columns, "_source_file", "_source_line"])
    extra_columns = [c for c in frame.columns if c not in data_columns and not c.startswith("_")]

    # keep rows of this window (by the interval column); unparseable ones are validated below
    interval = frame[spec.interval_column]
    if spec.columns[spec.interval_column] == DATE:
        when = pd.to_datetime(interval, errors="coerce", format="%Y-%m-%d").dt.tz_localize("UTC")
    else:
        when = _parse_timestamps(interval)
    in_window = (when >= pd.Timestamp(start)) & (when < pd.Timestamp(end))
    # rows whose interval value cannot be read belong to no window: quarantine them in the
    # window of the file they came from, so they are not lost
    unreadable = when.isna()
    frame = frame[in_window | unreadable]
    rows_read = len(frame)

    good, quarantined = validate(frame, spec, settings, now)
    good, conflicts, duplicates_dropped = split_duplicates(good, spec, data_columns)
    quarantined = pd.concat([quarantined, conflicts])
    for column in spec.pii_text_columns:
        good[column] = good[column].map(redact_pii)
        # the payload keeps the row as it came, except PII, which never leaves the loader
        if not quarantined.empty:
            quarantined[column] = quarantined[column].map(
                lambda v: redact_pii(v) if isinstance(v, str) else v
            )

    if extra_columns:
        log.warning("%s: extra source column(s) kept in extras: %s", entity, ", ".join(extra_columns))
        good["extras"] = [
            json.dumps({c: v for c, v in zip(extra_columns, values, strict=True)}, ensure_ascii=False)
            for values in good[extra_columns].itertuples(index=False, name=None)
        ]
    else:
        good["extras"] = ""
    good["_run_id"] = run_id
    copy_columns = [*data_columns, "extras", "_run_id", "_source_file"]
    good = good.sort_values(list(spec.key))
    buffer = io.StringIO()
    good[copy_columns].to_csv(buffer, index=False, header=False)
    payload = buffer.getvalue()
    checksum = hashlib.sha256(good[data_columns].to_csv(index=False).encode()).hexdigest()

    table = spec.table
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (warehouse.lock_key(f"load:{entity}"),))
        cur.execute(f"create temp table _batch (like {table} including defaults) on commit drop")
        buffer.seek(0)
        cur.copy_expert(
            f"copy _batch ({', '.join(copy_columns)}) from stdin with (format csv, null '')",
            io.StringIO(payload),
        )
        cur.execute(
            f"delete from {table} where {spec.interval_column} >= %s and {spec.interval_column} < %s",
            (start, end),
        )
        rows_replaced = cur.rowcount
        # ids that live in another window of the raw table: keep the loaded one, quarantine this one
        cur.execute(
            f"delete from _batch b using {table} t where ({', '.join('b.' + k for k in spec.key)}) = "
            f"({', '.join('t.' + k for k in spec.key)}) returning b.*"
        )
        clashes = cur.fetchall()
        if clashes:
            names = [d.name for d in cur.description]
            clash_frame = pd.DataFrame(clashes, columns=names).astype(str)
            clash_frame["_source_line"] = 0
            clash_frame["rule"] = "duplicate_id_other_interval"
            clash_frame["detail"] = "id already loaded from a row in another data interval"
            quarantined = pd.concat([quarantined, clash_frame])
        cur.execute(f"insert into {table} select * from _batch")
        rows_loaded = cur.rowcount
        _quarantine(cur, quarantined, entity, run_id, start, end, data_columns)
        cur.execute(
            "insert into raw.load_audit (run_id, entity, interval_start, interval_end, source_files,"
            " rows_read, rows_loaded, rows_quarantined, duplicates_dropped, rows_replaced, checksum,"
            " source_location, duration_s) values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (run_id, entity, start, end, len(paths), rows_read, rows_loaded, len(quarantined),
             duplicates_dropped, rows_replaced, checksum, str(entity_dir), time.monotonic() - t0),
        )
    conn.commit()

    result = LoadResult(
        entity=entity, start=start, end=end, source_files=len(paths), rows_read=rows_read,
        rows_loaded=rows_loaded, rows_quarantined=len(quarantined),
        duplicates_dropped=duplicates_dropped, rows_replaced=rows_replaced, checksum=checksum,
        extra_columns=extra_columns, duration_s=round(time.monotonic() - t0, 3),
    )
    log.info("loaded %s", result.as_dict())
    if rows_read and len(quarantined) / rows_read > settings.max_quarantine_share:
        rules = quarantined["rule"].value_counts().head(5).to_dict()
        raise QuarantineThresholdExceeded(
            f"{entity} [{start:%Y-%m-%d}, {end:%Y-%m-%d}): {len(quarantined)} of {rows_read} rows "
            f"quarantined ({len(quarantined) / rows_read:.1%} > {settings.max_quarantine_share:.1%}); "
            f"rules: {rules}. Good rows were loaded; see raw.quarantine where run_id = '{run_id}'."
        )
    return result
