"""Column mappings: source columns -> contract columns, with built-in presets for real exports.

In sources.yml, `mapping:` is one of
  contract                        the source already uses the contract's column names (strict:
                                  every contract column must be present)
  qualtrics_csv | delighted_json  a built-in preset (below)
  {preset: <name>, <contract column>: <rule>, ...}   a preset (or none) with per-column overrides
A rule is a source column name (`person.id` for a nested JSON field), a list of candidates (the
first non-empty value wins), null (the source does not have it), or
{source: <name or list>, const: <value>, transform: timestamp | leading_number, timezone: <tz>}.
`transform: timestamp` reads Unix epochs (s or ms) and ISO strings, naive ones in `timezone`;
`leading_number` reads "10 - Extremely likely" as 10 (survey exports with choice text).
Contract columns a mapping does not mention are taken from a same-named source column if present.
Source columns no rule uses are kept per row in `extras` (jsonb) and reported as drift, except
those a preset drops (e.g. respondent e-mail / IP address).

Presets
- qualtrics_csv: a Qualtrics "CSV export" (3 header rows: column names, question text, ImportId
  JSON). The NPS question is the column with a `<Q>_NPS_GROUP` companion (override: `score: Q7`;
  numeric values or choice text such as "0 - Not at all likely" both work),
  the comment is the first text-entry column (ImportId ending in _TEXT) after the NPS question
  and its companion, in either order, else the next column (override: `comment: Q8`), RecordedDate is
  responded_at in the export's time zone (from the ImportId row), ResponseId the id, account_id /
  contact_id / survey_type / trigger_event come from embedded-data columns of those names
  (override, e.g. `account_id: AccountId`); contact_id falls back to ExternalReference.
- delighted_json: Delighted survey_responses (`GET /v1/survey_responses.json?expand[]=person`,
  pages of `per_page`, `since`/`until` in Unix seconds): id, score, comment, created_at (epoch),
  person.id, person_properties.{account_id, survey_type, trigger_event, locale, Delighted Source}.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from nps_airflow.connectors.base import LINE, RAW, REJECT, REJECT_DETAIL, Part
from nps_airflow.connectors.timestamps import has_offset, is_epoch, parse_instant

if TYPE_CHECKING:
    from nps.sources import EntitySource

EXTRAS = "_extras"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


@dataclass
class Rule:
    sources: list[str] = field(default_factory=list)
    const: str | None = None
    transform: str | None = None
    timezone: str | None = None
    strict: bool = True  # a missing source column is an error (else the value is null)


@dataclass(frozen=True)
class Preset:
    name: str
    options: dict[str, Any]  # connector defaults (sources.yml values win)
    rules: dict[str, Any]
    drop: tuple[str, ...] = ()
    entities: tuple[str, ...] = ("survey_responses",)


QUALTRICS_CSV = Preset(
    name="qualtrics_csv",
    options={"format": "csv", "header_rows": 3, "partition_date": "none"},
    rules={
        "response_id": "ResponseId",
        "responded_at": {"source": "RecordedDate", "transform": "timestamp"},
        "account_id": "account_id",
        "contact_id": {"source": ["contact_id", "ExternalReference"], "strict": False},
        "channel": {"source": ["channel", "DistributionChannel"], "strict": False},
        "language": {"source": ["language", "UserLanguage"], "strict": False},
        "survey_id": {"source": ["survey_id", "SurveyID"], "strict": False},
        "survey_type": {"source": ["survey_type"], "strict": False},
        "trigger_event": {"source": ["trigger_event"], "strict": False},
        "sent_at": {"source": ["sent_at"], "transform": "timestamp", "strict": False},
        # score / comment: detected from the _NPS_GROUP companion column, see _qualtrics()
    },
    drop=("IPAddress", "RecipientEmail", "RecipientFirstName", "RecipientLastName",
          "LocationLatitude", "LocationLongitude"),
)

DELIGHTED_JSON = Preset(
    name="delighted_json",
    options={
        "format": "jsonl",
        "params": {"expand[]": "person"},
        "pagination": {"type": "page", "page_param": "page", "size_param": "per_page", "size": 100},
        "window": {"from_param": "since", "to_param": "until", "format": "unix"},
        "auth": {"env": "DELIGHTED_API_KEY", "basic": True},
    },
    rules={
        "response_id": "id",
        "score": "score",
        "comment": {"source": ["comment"], "strict": False},
        "responded_at": {"source": "created_at", "transform": "timestamp"},
        "account_id": ["person_properties.account_id", "properties.account_id"],
        "contact_id": {"source": ["person.id", "person"], "strict": False},
        "survey_type": {"source": ["person_properties.survey_type", "properties.survey_type"], "strict": False},
        "trigger_event": {"source": ["person_properties.trigger_event", "properties.trigger_event"],
                          "strict": False},
        "channel": {"source": ["person_properties.Delighted Source", "properties.channel",
                               "person_properties.channel"], "strict": False},
        "language": {"source": ["person_properties.locale", "properties.locale", "locale"], "strict": False},
        "survey_id": {"source": ["person_properties.survey_id", "properties.survey_id"], "strict": False},
        "sent_at": {"source": [], "strict": False},
    },
    drop=("person.email", "person.name", "person.phone_number", "permalink"),
)

PRESETS = {p.name: p for p in (QUALTRICS_CSV, DELIGHTED_JSON)}


class MappingError(ValueError):
    """The mapping cannot be applied to this source (a named column is missing, ...)."""


def preset_of(source: EntitySource) -> Preset | None:
    mapping = source.mapping
    name = mapping if isinstance(mapping, str) else (mapping or {}).get("preset")
    if name in (None, "contract"):
        return None
    if name not in PRESETS:
        raise MappingError(
            f"{source.describe()}: unknown mapping preset {name!r}; built in: contract, {', '.join(PRESETS)}"
        )
    preset = PRESETS[name]
    if source.entity not in preset.entities:
        raise MappingError(f"{source.describe()}: preset {name} is for {', '.join(preset.entities)}")
    return preset


def _rule(value: Any, strict: bool = True) -> Rule:
    if value is None:
        return Rule(sources=[], strict=False)
    if isinstance(value, str):
        return Rule(sources=[value], strict=strict)
    if isinstance(value, list):
        return Rule(sources=[str(v) for v in value], strict=strict)
    if isinstance(value, dict):
        src = value.get("source", [])
        return Rule(
            sources=[src] if isinstance(src, str) else [str(v) for v in src or []],
            const=None if value.get("const") is None else str(value["const"]),
            transform=value.get("transform"),
            timezone=value.get("timezone"),
            strict=bool(value.get("strict", strict)) and value.get("const") is None,
        )
    raise MappingError(f"mapping rule must be a column name, a list, null or a mapping, got {value!r}")


def rules_for(source: EntitySource, columns: list[str], part: Part) -> tuple[dict[str, Rule], set[str]]:
    """The rule per contract column for this part, and the source columns to drop."""
    preset = preset_of(source)
    overrides = dict(source.mapping) if isinstance(source.mapping, dict) else {}
    overrides.pop("preset", None)
    unknown = set(overrides) - set(columns)
    if unknown:
        raise MappingError(
            f"{source.describe()}: mapping names unknown contract column(s) {', '.join(sorted(unknown))}"
        )
    rules: dict[str, Rule] = {}
    drop: set[str] = set()
    if preset is not None:
        drop.update(preset.drop)
        for column, value in preset.rules.items():
            rules[column] = _rule(value)
        if preset is QUALTRICS_CSV:
            extra_rules, extra_drop = _qualtrics(part, overrides, source)
            rules.update(extra_rules)
            drop.update(extra_drop)
    for column, value in overrides.items():
        rules[column] = _rule(value)
    present = set(part.frame.columns)
    for column in columns:
        if column not in rules:
            # preset / explicit mapping: same-named column if any; the bare contract: strict
            rules[column] = Rule(sources=[column], strict=preset is None and not overrides or column in present)
    return rules, drop


def _qualtrics(part: Part, overrides: dict[str, Any], source: EntitySource) -> tuple[dict[str, Rule], set[str]]:
    names = [c for c in part.frame.columns if not str(c).startswith("_")]
    rules: dict[str, Rule] = {}
    drop = {c for c in names if str(c).endswith("_NPS_GROUP")}
    score = overrides.get("score")
    if score is None:
        candidates = [c for c in names if f"{c}_NPS_GROUP" in names]
        if len(candidates) != 1:
            found = ", ".join(candidates) or "none"
            raise MappingError(
                f"{source.describe()}: {part.location}: cannot tell the NPS question (columns with a "
                f"_NPS_GROUP companion: {found}); set mapping: {{preset: qualtrics_csv, score: <column>}}"
            )
        score = candidates[0]
        # an export with "choice text" instead of numeric values says "10 - Extremely likely"
        rules["score"] = Rule(sources=[score], transform="leading_number")
    header_rows = part.meta.get("header_rows") or []
    if "comment" not in overrides:
        rules["comment"] = Rule(sources=_qualtrics_comment(names, score, header_rows), strict=False)
    # time zone of RecordedDate from the ImportId row: {"ImportId":"recordedDate","timeZone":"..."}
    tz = source.option("timezone")
    if tz is None and len(header_rows) >= 3:
        for name, raw in zip(header_rows[0], header_rows[2], strict=False):
            if name == "RecordedDate":
                try:
                    tz = json.loads(raw).get("timeZone")
                except (ValueError, AttributeError):
                    tz = None
    rules["responded_at"] = Rule(sources=["RecordedDate"], transform="timestamp", timezone=tz)
    return rules, drop


def _qualtrics_comment(names: list[str], score: str, header_rows: list[list[str]]) -> list[str]:
    """The comment column: the first text-entry question after the NPS question and its
    _NPS_GROUP companion, whichever order the export puts those two in (the API sends the
    companion first); without an ImportId row, simply the next column."""
    positions = [names.index(c) for c in (score, f"{score}_NPS_GROUP") if c in names]
    if not positions:
        return []
    after = names[max(positions) + 1:]
    if len(header_rows) >= 3:
        import_ids = dict(zip(header_rows[0], header_rows[2], strict=False))
        for name in after:
            try:
                import_id = str(json.loads(import_ids.get(name) or "{}").get("ImportId", ""))
            except (ValueError, AttributeError):
                continue
            if import_id.upper().endswith("_TEXT"):
                return [name]
    return after[:1]


EXCLUDE = "_exclude"  # why a row is not an answer (a preview, a test, unfinished); "" for answers
# Qualtrics' response types ("Status"; numeric in a values export) that are not respondents' answers
_QUALTRICS_NOT_ANSWERS = {"survey preview": "a preview", "1": "a preview", "survey test": "a generated test",
                          "2": "a generated test", "spam": "spam", "8": "spam", "9": "spam (a preview)"}


def exclusions(frame: pd.DataFrame, source: EntitySource) -> pd.Series:
    """Per row, why it is not a respondent's answer, else "": in a Qualtrics export Status a survey
    preview, a generated test or spam, or Finished false (an unfinished response, unless the
    source says include_unfinished: true); in any source, a match of its `exclude_when` rules.
    Such rows are excluded, counted and kept in the quarantine table under rule `excluded`; they
    never reach an NPS."""
    reason = pd.Series("", index=frame.index, dtype=object)
    if preset_of(source) is not QUALTRICS_CSV:
        return _excluded_by_rules(frame, source, reason)
    if "Status" in frame:
        status = frame["Status"].astype(str).str.strip()
        kind = status.str.lower().map(_QUALTRICS_NOT_ANSWERS)
        reason = reason.where(kind.isna(), "Status " + status + ": " + kind.fillna("") + ", not an answer")
    if "Finished" in frame and not source.include_unfinished:
        finished = frame["Finished"].astype(str).str.strip().str.lower()
        unfinished = finished.isin({"false", "0"}) & (reason == "")
        reason = reason.where(~unfinished, "Finished false: an unfinished response (include_unfinished: true keeps "
                                           "them)")
    return _excluded_by_rules(frame, source, reason)


def _excluded_by_rules(frame: pd.DataFrame, source: EntitySource, reason: pd.Series) -> pd.Series:
    """The source's own `exclude_when` rules (e.g. Delighted responses a team tagged "test": the API
    itself marks none), for rows no earlier reason excluded. A rule's column missing from a
    tabular part is a configuration mistake; a JSON record may simply not have the key."""
    for rule in source.exclude_when:
        if rule.column not in frame:
            continue
        hit = frame[rule.column].astype(str).map(rule.matches)
        new = hit.notna() & (reason == "")
        reason = reason.where(~new, rule.column + " " + hit.fillna("").astype(str) + ": " + rule.reason)
    return reason


def _naive_warning(values: pd.Series, column: str, source_column: str, source: EntitySource,
                   part: Part) -> list[dict[str, Any]]:
    """Timestamps with no offset in a source that declares no time zone (taken as UTC, which is
    wrong by hours for an export in local time): count and an example, for naive_timestamps()."""
    text = values.astype(str).str.strip()
    naive = (text != "") & ~is_epoch(text) & ~has_offset(text)
    if not naive.any():
        return []
    return [{"column": source_column, "count": int(naive.sum()), "example": text[naive].iloc[0],
             "location": part.location}]


def naive_timestamps(found: list[dict[str, Any]], source: EntitySource) -> list[str]:
    """One warning per source column for what _naive_warning found over the parts of a load."""
    out = []
    for column in dict.fromkeys(f["column"] for f in found):
        mine = [f for f in found if f["column"] == column]
        files = len({f["location"] for f in mine})
        out.append(
            f"{source.entity}: {sum(f['count'] for f in mine)} value(s) of {column} ({files} file(s)/part(s), e.g. "
            f"{mine[0]['example']!r} in {mine[0]['location']}) have no time zone and the source declares none: "
            f"taken as UTC. If the export is in local time, set timezone: <IANA name, e.g. America/Denver> for "
            f"{source.entity} in {source.origin or 'the sources configuration'}."
        )
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _look_alike(column: str, rule: Rule, present: list[str]) -> str:
    """A hint for a missing column: the source's columns whose names look like it."""
    wanted = {_norm(column), *(_norm(s) for s in rule.sources)} - {""}
    by_norm = {_norm(p): p for p in present}
    same = [p for p in present if _norm(p) in wanted]  # AccountID, Account-Id
    # a word of the contract name in the source's (account_id: "Account Number"), not just "id"
    words = {w for w in re.split(r"[^a-z0-9]+", column.lower()) if len(w) >= 4}
    sharing = [p for p in present if any(w in _norm(p) for w in words)]
    typos = [by_norm[m] for w in sorted(wanted) for m in difflib.get_close_matches(w, list(by_norm), n=3, cutoff=0.85)]
    hints = list(dict.fromkeys(same + sharing + typos))[:3]
    mapping = f"mapping: {{{column}: <source column>}}"
    if hints:
        return f"Source columns that look alike: {', '.join(hints)} (map one with {mapping} in sources.yml)."
    return f"No source column looks alike; the file has: {', '.join(present[:30])}. Map one with {mapping}."


def as_null(values: pd.Series, nulls: frozenset[str]) -> pd.Series:
    """`values` with the source's null tokens ("NA", "N/A", "null", "-", ...) as empty strings,
    which every later step reads as "no value"; other values (and non-text ones) unchanged."""
    if not nulls or not len(values):
        return values
    try:
        token = values.str.strip().str.casefold().isin(nulls)
    except AttributeError:  # no text at all (a JSON column of numbers)
        return values
    return values.where(~token, "") if token.any() else values


def _transformed(values: pd.Series, transform: str | None, timezone: str, column: str,
                 source: EntitySource) -> pd.Series:
    """A rule's `transform` applied to the column's values (none: as they are)."""
    if transform == "timestamp":
        parsed = parse_instant(values, timezone)
        return parsed.dt.strftime(_TS_FORMAT).where(parsed.notna(), values)
    if transform == "leading_number":
        number = values.str.extract(r"^\s*(-?\d+(?:\.\d+)?)(?:\s*-\s.*)?\s*$", expand=False)
        return number.where(number.notna(), values)  # no number: kept as is, quarantined later
    if transform not in (None, ""):
        raise MappingError(f"{source.describe()}: unknown transform {transform!r} for {column}")
    return values


def apply(part: Part, source: EntitySource, columns: list[str], required: frozenset[str], *,
          null_columns: frozenset[str] = frozenset(), timestamp_columns: frozenset[str] = frozenset()
          ) -> tuple[pd.DataFrame, list[str]]:
    """The part as contract columns (+ _extras JSON, _source_line, _reject...), and its extra
    source columns, with the source's null tokens emptied in `null_columns`. Raises MappingError
    naming the column and the source if one is missing. `result.attrs["warnings"]`: timestamps
    without an offset in `timestamp_columns` of a source that declares no time zone (taken as
    UTC, said so)."""
    rules, drop = rules_for(source, columns, part)
    nulls = frozenset(v.strip().casefold() for v in source.null_values) - {""}
    frame = part.frame
    present = [c for c in frame.columns if not str(c).startswith("_")]
    present_set = set(present)
    n = len(frame)
    out: dict[str, pd.Series] = {}
    used: set[str] = set()
    warnings: list[dict[str, Any]] = []  # naive timestamps found (_naive_warning)
    all_rejected = REJECT in frame and bool((frame[REJECT] != "").all())
    for column in columns:
        rule = rules[column]
        if rule.const is not None:
            out[column] = pd.Series(rule.const, index=frame.index, dtype=str)
            continue
        found = [s for s in rule.sources if s in present_set]
        used.update(found)
        # a tabular source must have the columns its mapping names; a JSON record may omit a key.
        # A required field absent from a whole non-empty part is a mapping mistake, not bad rows:
        # said before any row is validated (else every row would be quarantined as missing_<column>)
        missing = not found and (
            (part.tabular and rule.strict and rule.sources)
            or (column in required and n > 0 and not all_rejected)
        )
        if missing:
            looked = ", ".join(rule.sources) or "(no source column mapped)"
            kind = "required column" if column in required else "column"
            raise MappingError(
                f"{source.entity}: {kind} {column} (source column {looked}) missing in "
                f"{part.location} [{source.describe()}]; nothing was loaded. {_look_alike(column, rule, present)}"
            )
        if not found:
            out[column] = pd.Series("", index=frame.index, dtype=str)
            continue
        tokens = nulls if column in null_columns else frozenset()
        values = as_null(frame[found[0]], tokens)
        for other in found[1:]:
            values = values.where(values != "", as_null(frame[other], tokens))
        transform = rule.transform
        if column in timestamp_columns:
            if rule.timezone or source.option("timezone"):
                transform = transform or "timestamp"  # a declared zone applies to every timestamp column
            else:
                warnings.extend(_naive_warning(values, column, found[0], source, part))
        out[column] = _transformed(values, transform, rule.timezone or source.option("timezone", "UTC"), column,
                                   source)
    result = pd.DataFrame(out, index=frame.index)
    extras = [c for c in present if c not in used and c not in drop]
    if extras:
        result[EXTRAS] = [
            json.dumps({c: v for c, v in zip(extras, values, strict=True) if v != ""}, ensure_ascii=False)
            for values in frame[extras].itertuples(index=False, name=None)
        ]
    else:
        result[EXTRAS] = ""
    result[LINE] = frame[LINE] if LINE in frame else range(1, n + 1)
    for column in (REJECT, REJECT_DETAIL, RAW):
        result[column] = frame[column] if column in frame else ""
    missing_rules = [r.column for r in source.exclude_when if r.column not in frame] if part.tabular and n else []
    if missing_rules:
        raise MappingError(f"{source.entity}: exclude_when column(s) {', '.join(missing_rules)} missing in "
                           f"{part.location} [{source.describe()}]; nothing was loaded. "
                           f"{_look_alike(missing_rules[0], Rule(sources=missing_rules[:1]), present)}")
    result[EXCLUDE] = exclusions(frame, source) if preset_of(source) is QUALTRICS_CSV or source.exclude_when else ""
    if "_source_file" in frame:
        result["_source_file"] = frame["_source_file"]
    result.attrs["warnings"] = warnings
    return result, extras
