"""Extract: a configured source -> the rows one load would write, for one data interval.

Steps 1-3 of a load (`nps_airflow.load` writes them, steps 4-6), for one entity and one window
`[start, end)`, without the database:

1. the entity's connector (sources.yml: file drops, HTTP API or SQL database, see
   `nps_airflow.connectors`) reads the rows that can belong to the window, as strings with their
   source location; the column mapping (contract names, a built-in preset such as a Qualtrics
   export, or the user's own) turns them into contract columns, extra source columns into
   `extras`; a mapped column missing from the source fails here, before anything is written;
2. three modes: *partition* (date-partitioned file drops, the default for files) loads every row
   of the files dated on the window's days, whatever the row's own date, so a late row in a later
   file is loaded, not dropped; *window* (HTTP / SQL / undated files) keeps the rows whose
   interval column falls in the window; *incremental* (an updated-since / watermark column) keeps
   every row the source updated in the window;
3. every row is validated against the contract; contract breakers (and rows the connector could
   not read: invalid bytes, broken JSON, CSV rows with fewer / more fields than the header) are
   set apart for `raw.quarantine` with the raw payload, the rule broken and where they came from;
   rows that are not answers (a preview, a test, an unfinished response) are set apart as
   `excluded`; exact duplicates are dropped; emails / phone numbers are redacted from comments; a
   file no parser can read is set aside.

`check_sources` (`nps sources check`) is the same read as a dry run of every configured source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from nps import config, contracts, sources
from nps.contracts import DATE, INT, NUMERIC, SCORE, SPECS, TEXT, TIMESTAMP, EntitySpec
from nps_airflow import connectors
from nps_airflow.connectors import LINE, RAW, REJECT, REJECT_DETAIL, SourceContractError
from nps_airflow.connectors import column_mapping as mappings

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- reading


def entity_source(entity: str, sources_dir: Path | None = None) -> sources.EntitySource:
    """The entity's configured source (NPS_SOURCES_CONFIG or sources.yml), preset options merged."""
    source = sources.load(sources_dir=sources_dir).entity(entity)
    return with_preset_options(source)


def with_preset_options(source: sources.EntitySource) -> sources.EntitySource:
    preset = mappings.preset_of(source)
    if preset is None:
        return source
    return replace(source, options={**preset.options, **source.options})


def _window_source_column(source: sources.EntitySource, spec: EntitySpec) -> str | None:
    """The source column holding the interval column, when it can be filtered on as is (SQL)."""
    column = spec.interval_column
    overrides = source.mapping if isinstance(source.mapping, dict) else {}
    preset = mappings.preset_of(source)
    rule = overrides.get(column) or (preset.rules.get(column) if preset else None) or column
    if isinstance(rule, str):
        return rule
    if isinstance(rule, dict) and isinstance(rule.get("source"), str) and not rule.get("transform"):
        return rule["source"]
    return None


def _merge_alike(parts: list[connectors.Part]) -> list[connectors.Part]:
    """Consecutive parts with the same columns as one part (mapping them once is much cheaper);
    each row keeps its own `_source_file` / `_source_line`."""
    merged: list[connectors.Part] = []
    group: list[connectors.Part] = []

    def flush() -> None:
        if len(group) == 1:
            merged.append(group[0])
        elif group:
            frames = [p.frame.assign(_source_file=p.location) for p in group]
            location = f"{group[0].location} (and {len(group) - 1} more with the same columns)"
            merged.append(connectors.Part(frame=pd.concat(frames, ignore_index=True), location=location,
                                          tabular=group[0].tabular, meta=group[0].meta))
        group.clear()

    for part in parts:
        if group and (list(part.frame.columns) != list(group[0].frame.columns)
                      or part.tabular != group[0].tabular or part.meta != group[0].meta):
            flush()
        group.append(part)
    flush()
    return merged


def read_source(source: sources.EntitySource, spec: EntitySpec, start: datetime, end: datetime
                ) -> tuple[pd.DataFrame, list[str], connectors.Batch]:
    """The source's rows for the window as contract columns + _extras, _source_file, _source_line,
    _reject...; and the extra (unmapped) source columns. Raises SourceContractError before anything
    is written when a mapped column is missing."""
    data_columns = list(spec.columns)
    batch = connectors.build(source).read(start, end, window_column=_window_source_column(source, spec))
    frames: list[pd.DataFrame] = []
    extras: list[str] = []
    naive: list[dict[str, Any]] = []
    for part in _merge_alike(batch.parts):
        try:
            frame, extra = mappings.apply(part, source, data_columns, spec.required, null_columns=spec.null_columns,
                                          timestamp_columns=spec.timestamp_columns)
        except mappings.MappingError as exc:
            raise SourceContractError(str(exc)) from exc
        naive.extend(frame.attrs.pop("warnings", []))
        if "_source_file" not in frame.columns:
            frame["_source_file"] = part.location
        frames.append(frame)
        extras.extend(c for c in extra if c not in extras)
    for warning in mappings.naive_timestamps(naive, source):
        log.warning("%s", warning)
        batch.warnings.append(warning)
    columns = [*data_columns, mappings.EXTRAS, "_source_file", LINE, REJECT, REJECT_DETAIL, RAW, mappings.EXCLUDE]
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=str) for c in columns}), extras, batch
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return frame[columns], extras, batch


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

    def flag(mask: pd.Series, rule: pd.Series | str, detail: pd.Series | str) -> None:
        new = mask & (problems == "")
        if not new.any():
            return
        problems[new] = rule if isinstance(rule, str) else rule[new]
        details[new] = detail if isinstance(detail, str) else detail[new]

    # rows the connector could not read cleanly (invalid encoding, broken JSON) come first
    if REJECT in frame.columns:
        flag(frame[REJECT] != "", frame[REJECT], frame[REJECT_DETAIL])
    for column in sorted(spec.required):
        flag(frame[column].str.strip() == "", f"missing_{column}", f"{column} is empty")
    for column in sorted(spec.enforced_enums):
        allowed = spec.enums[column]
        value = frame[column].str.strip()
        flag((value != "") & ~value.isin(allowed), f"invalid_{column}",
             f"not one of {', '.join(allowed)}: " + frame[column])
        good[column] = value  # stored as the documented value (" relational" -> "relational")

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
            flag(parsed > pd.Timestamp(now.date()) + pd.Timedelta(days=contracts.FUTURE_DATE_TOLERANCE_DAYS),
                 f"future_{column}", "in the future: " + raw)
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
                low, high = contracts.SCORE_MIN, contracts.SCORE_MAX
                flag((number < low) | (number > high), f"{column}_out_of_range", f"outside {low}-{high}: " + raw)
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




def _interval_values(frame: pd.DataFrame, spec: EntitySpec) -> pd.Series:
    interval = frame[spec.interval_column]
    if spec.columns[spec.interval_column] == DATE:
        return pd.to_datetime(interval, errors="coerce", format="%Y-%m-%d").dt.tz_localize("UTC")
    return _parse_timestamps(interval)



@dataclass
class PreparedBatch:
    """One entity's rows for a window after reading, mapping, validation, de-duplication and PII
    redaction: what would be loaded and what would be quarantined. Nothing written yet."""

    source: sources.EntitySource
    batch: connectors.Batch
    mode: str  # partition | window | incremental
    rows_read: int
    good: pd.DataFrame
    quarantined: pd.DataFrame
    duplicates_dropped: int
    extra_columns: list[str]
    originals: pd.DataFrame | None  # unredacted comments, only with keep_original_comment
    settings: config.LoadSettings
    #: files no parser could read (their text's start PII-redacted like quarantine payloads)
    unreadable: list[connectors.Unreadable] = field(default_factory=list)
    #: rows that are not answers (a Qualtrics preview, test or unfinished response), rule `excluded`
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)


def prepare_batch(entity: str, start: datetime, end: datetime, *, sources_dir: Path | None = None,
                  settings: config.LoadSettings | None = None, now: datetime | None = None,
                  source: sources.EntitySource | None = None) -> PreparedBatch:
    """Steps 1-3 of the module docstring for one entity and window, without the database.

    `source` defaults to the entity's entry in the sources configuration (NPS_SOURCES_CONFIG or
    sources.yml, with `${NPS_SOURCES_DIR}` = `sources_dir` when given); `settings` to that
    source's quarantine threshold and limits. Raises SourceContractError when the source cannot
    be mapped (a required column is missing)."""
    from nlp.text import redact_pii  # one PII scrubber for loader and theme engine

    spec = SPECS[entity]
    source = with_preset_options(source) if source is not None else entity_source(entity, sources_dir)
    if source.entity != entity:
        raise ValueError(f"source is configured for {source.entity}, not {entity}")
    settings = settings or config.LoadSettings(
        max_quarantine_share=source.max_quarantine_share, max_comment_chars=source.max_comment_chars,
        future_tolerance_hours=source.future_tolerance_hours,
    )
    now = now or datetime.now(UTC)
    incremental = source.incremental_column is not None

    frame, extra_columns, batch = read_source(source, spec, start, end)
    data_columns = list(spec.columns)
    mode = "incremental" if incremental else "partition" if batch.files is not None else "window"

    if mode == "window":
        # keep rows of this window (by the interval column); unparseable ones are validated below:
        # they belong to no window, so they are quarantined in the window of the source they came from
        when = _interval_values(frame, spec)
        in_window = (when >= pd.Timestamp(start)) & (when < pd.Timestamp(end))
        frame = frame[in_window | when.isna()]
    rows_read = len(frame)
    # not answers (a preview, a test, unfinished): counted and kept apart from contract breakers
    not_answers = frame[mappings.EXCLUDE] != ""
    excluded = frame[not_answers].assign(rule="excluded", detail=frame.loc[not_answers, mappings.EXCLUDE])
    frame = frame[~not_answers].drop(columns=[mappings.EXCLUDE])
    excluded = excluded.drop(columns=[mappings.EXCLUDE])

    good, quarantined = validate(frame, spec, settings, now)
    good, conflicts, duplicates_dropped = split_duplicates(good, spec, data_columns)
    quarantined = pd.concat([quarantined, conflicts])
    originals = None
    for column in spec.pii_text_columns:
        redacted = good[column].map(redact_pii)
        if source.keep_original_comment and column == "comment":
            changed = redacted != good[column]
            originals = good.loc[changed, [*spec.key, column]]
        good[column] = redacted
        # the payload keeps the row as it came, except PII, which never leaves the loader
        # unless the configuration keeps originals
        if not source.keep_original_comment:
            for col in (column, RAW):
                if not quarantined.empty:
                    quarantined[col] = quarantined[col].map(lambda v: redact_pii(v) if isinstance(v, str) else v)
                if not excluded.empty:
                    excluded[col] = excluded[col].map(lambda v: redact_pii(v) if isinstance(v, str) else v)
    redact_heads = bool(spec.pii_text_columns) and not source.keep_original_comment
    unreadable = [replace(u, head=redact_pii(u.head) or "") if redact_heads else u for u in batch.unreadable]
    return PreparedBatch(source=source, batch=batch, mode=mode, rows_read=rows_read, good=good,
                         quarantined=quarantined, duplicates_dropped=duplicates_dropped,
                         extra_columns=extra_columns, originals=originals, settings=settings,
                         unreadable=unreadable, excluded=excluded)


def unreadable_message(entity: str, start: datetime, end: datetime, source: sources.EntitySource,
                        unreadable: list[connectors.Unreadable]) -> str:
    files = "".join(f"\n  {u.location}: {u.detail}" for u in unreadable)
    return (
        f"{entity} [{start:%Y-%m-%d}, {end:%Y-%m-%d}): {len(unreadable)} file(s) could not be read:{files}\n"
        "The other files were loaded; the rows loaded from these files before were kept. Fix or replace "
        f"the file(s) and rerun, or set on_unreadable_file: quarantine for {entity} in "
        f"{source.origin or 'the sources configuration'} to load around them (raw.quarantine, rule unreadable_file)."
    )


def check_sources(start: datetime, end: datetime, entities: list[str] | None = None, *,
                  now: datetime | None = None) -> list[dict]:
    """A dry run of every configured source for the window: what a load would read, load and
    quarantine (by rule, `unreadable_file` counting files), the unreadable files, the extra columns,
    or the error that would stop it. Writes nothing (ids already loaded from another file or window,
    and rows a re-drop would remove from what was loaded before, are only found by a real load)."""
    report = []
    try:
        configured = sources.load()
    except sources.SourceConfigError as exc:
        return [{"entity": entity, "ok": False, "error": str(exc)} for entity in entities or list(SPECS)]
    for entity in entities or list(SPECS):
        row: dict = {"entity": entity}
        if entity in contracts.OPTIONAL_ENTITIES and not configured.is_configured(entity):
            row.update(ok=True, not_configured=True, location=f"not configured in {configured.path}")
            report.append(row)
            continue
        try:
            prepared = prepare_batch(entity, start, end, now=now)
        except (sources.SourceConfigError, SourceContractError, connectors.SourceUnavailable,
                mappings.MappingError, ValueError) as exc:
            row.update(ok=False, error=str(exc))
            report.append(row)
            continue
        q, unreadable = prepared.quarantined, prepared.unreadable
        share = len(q) / prepared.rows_read if prepared.rows_read else 0.0
        rules = q["rule"].value_counts().to_dict() if len(q) else {}
        if unreadable:
            rules["unreadable_file"] = len(unreadable)
        row.update(
            ok=share <= prepared.settings.max_quarantine_share,
            connector=prepared.source.connector, mode=prepared.mode, location=prepared.batch.location,
            units=prepared.batch.units, rows_read=prepared.rows_read, rows_to_load=len(prepared.good),
            rows_to_quarantine=len(q), duplicates_dropped=prepared.duplicates_dropped,
            quarantine_share=round(share, 4), max_quarantine_share=prepared.settings.max_quarantine_share,
            rules=rules, extra_columns=prepared.extra_columns,
            rows_to_exclude=len(prepared.excluded), warnings=prepared.batch.warnings,
            excluded=(prepared.excluded["detail"].str.split(":").str[0].value_counts().to_dict()
                      if len(prepared.excluded) else {}),
            unreadable_files=[{"file": u.location, "detail": u.detail} for u in unreadable],
        )
        if unreadable and prepared.source.on_unreadable_file == "fail":
            row.update(ok=False, error=unreadable_message(entity, start, end, prepared.source, unreadable))
        report.append(row)
    return report
