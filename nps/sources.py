"""Source configuration: where each entity's data comes from and how it maps onto the contract.

One YAML file (default: `sources.yml` at the repository root; `NPS_SOURCES_CONFIG` points at
another) says, per entity, which connector reads it (`file`, `http`, `sql`), with what options,
and how source columns map onto the contract columns of docs/contracts.md. `${VAR}` and
`${VAR:-default}` are replaced from the environment; secrets never belong in the file (HTTP auth
comes from an env var or an Airflow connection, SQL URLs from an env var or a connection).

Load settings (per entity, or under `defaults:`; defaults from `nps.contracts`): `max_quarantine_share`,
`max_comment_chars`, `future_tolerance_hours` (the contract's is also the most a source may set: the
validation gate applies it), `keep_original_comment` (false), `max_row_loss_share` (the share of
the rows loaded before from a replaced file / window a load may remove; more fails it before
anything is written), `accept_row_loss` (false: true loads such a loss anyway; so do
`NPS_ACCEPT_ROW_LOSS=1` and load_entity(accept_row_loss=True)), and for file sources
`on_unreadable_file` (fail | quarantine, default fail); `null_values` (the cell values
that mean "no value", compared trimmed and case-insensitively: default empty, NA, N/A, null, -;
`[]` keeps them as text); `include_unfinished` (false: survey presets exclude unfinished responses);
`exclude_when` (the source's own marks of rows that are not answers, e.g. a tag "test": a list
of `{column, values | contains, reason}`; such rows are excluded like Qualtrics previews).

Only `survey_responses` is required. CRM (accounts, contacts, activities), product usage
(usage_daily) and survey sends (survey_sends) are optional: an entity left out (or given no value)
is "not configured".

Cheap to import: only PyYAML, loaded lazily.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from nps import config, contracts

CONFIG_ENV = config.SOURCES_CONFIG_ENV
DEFAULT_CONFIG = config.DEFAULT_SOURCES_CONFIG

CONNECTORS = ("file", "http", "sql")
FORMATS = ("csv", "jsonl", "json", "parquet")
ON_UNREADABLE_FILE = ("fail", "quarantine")
# what exports write for "no value": R and pandas (NA), spreadsheets (N/A, -), SQL dumps (null)
DEFAULT_NULL_VALUES = ("", "NA", "N/A", "null", "-")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SourceConfigError(ValueError):
    """The source configuration file is missing, malformed or incomplete."""


@dataclass(frozen=True)
class ExcludeRule:
    """Rows whose source `column` equals one of `values` or contains one of `contains` (trimmed,
    any case) are not answers (a team's own test responses, say): excluded, counted, kept apart."""

    column: str
    values: frozenset[str] = frozenset()
    contains: tuple[str, ...] = ()
    reason: str = "excluded by exclude_when"

    def matches(self, value: str) -> str | None:
        """The value or fragment that matched, else None."""
        text = value.strip().casefold()
        if text in self.values:
            return value.strip()
        return next((c for c in self.contains if c in text), None)


@dataclass(frozen=True)
class EntitySource:
    """One entity's source: connector kind, its options, the column mapping and load settings."""

    entity: str
    connector: str
    options: dict[str, Any]
    # contract column -> spec (str source column | list of candidates | dict) ; or a preset name
    mapping: str | dict[str, Any] = "contract"
    max_quarantine_share: float = contracts.MAX_QUARANTINE_SHARE
    max_comment_chars: int = contracts.MAX_COMMENT_CHARS
    future_tolerance_hours: float = contracts.FUTURE_TOLERANCE_HOURS
    keep_original_comment: bool = False
    # a load that would remove more than this share of the rows loaded before from a file it
    # replaces (partition mode) or from its window (window mode) fails, writing nothing
    max_row_loss_share: float = contracts.MAX_ROW_LOSS_SHARE
    accept_row_loss: bool = False  # true: such a loss is loaded (and audited) instead
    on_unreadable_file: str = "fail"  # fail | quarantine (nps_airflow.connectors.file_drops)
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES  # read as empty before validation and theming
    include_unfinished: bool = False  # survey presets: keep unfinished responses as answers
    exclude_when: tuple[ExcludeRule, ...] = ()  # the source's own marks of rows that are not answers
    origin: str = ""  # the config file it came from, for error messages

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    @property
    def incremental_column(self) -> str | None:
        """The source's updated-since / watermark column, if the entity is loaded incrementally."""
        return self.options.get("watermark_column") or (self.options.get("incremental") or {}).get("column")

    def describe(self) -> str:
        return f"{self.entity} ({self.connector} source from {self.origin or 'defaults'})"


@dataclass(frozen=True)
class SourcesConfig:
    path: str
    entities: dict[str, EntitySource] = field(default_factory=dict)

    def entity(self, name: str) -> EntitySource:
        try:
            return self.entities[name]
        except KeyError:
            optional = (f"; {name} is optional: leave it out and the marts that need it say so "
                        "(README 'Survey-only teams')" if name in contracts.OPTIONAL_ENTITIES else "")
            raise SourceConfigError(
                f"{self.path}: no source configured for entity {name!r} "
                f"(configured: {', '.join(sorted(self.entities)) or 'none'}){optional}"
            ) from None

    def is_configured(self, name: str) -> bool:
        return name in self.entities

    @property
    def not_configured(self) -> list[str]:
        """The optional entities this configuration leaves out (CRM, product usage)."""
        return [e for e in contracts.OPTIONAL_ENTITIES if e not in self.entities]


def expand_vars(value: Any, env: dict[str, str]) -> Any:
    """Replace ${VAR} / ${VAR:-default} in every string of a parsed YAML tree."""
    if isinstance(value, str):
        def sub(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            raise SourceConfigError(f"environment variable {name} is not set (used as ${{{name}}})")

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_vars(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, env) for v in value]
    return value


def config_path() -> Path:
    return config.sources_config_path()


def _number(value: Any, name: str, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SourceConfigError(f"{where}: {name} must be a number, got {value!r}") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def parse(document: dict[str, Any], *, origin: str = "<config>", sources_dir: Path | None = None,
          env: dict[str, str] | None = None) -> SourcesConfig:
    """Validate a parsed YAML document into a SourcesConfig. `sources_dir` (or the environment's
    NPS_SOURCES_DIR, else data/sources) is what `${NPS_SOURCES_DIR}` expands to."""
    env = dict(os.environ if env is None else env)
    if sources_dir is not None:
        env["NPS_SOURCES_DIR"] = str(sources_dir)
    else:
        env.setdefault("NPS_SOURCES_DIR", str(config.sources_dir()))
    if not isinstance(document, dict) or not isinstance(document.get("entities"), dict):
        raise SourceConfigError(f"{origin}: expected a mapping with an 'entities:' section")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise SourceConfigError(f"{origin}: 'defaults' must be a mapping")
    unknown = set(document["entities"]) - set(contracts.ENTITIES)
    if unknown:
        raise SourceConfigError(
            f"{origin}: unknown entit(y/ies) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(contracts.ENTITIES)}"
        )
    entities: dict[str, EntitySource] = {}
    for name, raw in document["entities"].items():
        where = f"{origin}: entities.{name}"
        if raw is None and name in contracts.OPTIONAL_ENTITIES:
            continue  # `accounts:` with no value: not configured, like leaving it out
        if not isinstance(raw, dict):
            raise SourceConfigError(f"{where} must be a mapping")
        # settings: entity value, else defaults (env vars expanded lazily, only where used)
        merged = {**{k: v for k, v in defaults.items()}, **raw}
        merged = expand_vars(merged, env)
        connector = merged.pop("connector", "file")
        if connector not in CONNECTORS:
            raise SourceConfigError(f"{where}: connector must be one of {', '.join(CONNECTORS)}, got {connector!r}")
        mapping = merged.pop("mapping", "contract")
        settings = _load_settings(merged, where)  # pops them: what is left are the connector's options
        _check_connector_options(connector, merged, where)
        entities[name] = EntitySource(entity=name, connector=connector, options=merged, mapping=mapping,
                                      origin=origin, **settings)
    return SourcesConfig(path=origin, entities=entities)


class _LoadSettings(TypedDict):
    """The load settings of a source (EntitySource's fields after its options)."""

    max_quarantine_share: float
    max_comment_chars: int
    future_tolerance_hours: float
    keep_original_comment: bool
    max_row_loss_share: float
    accept_row_loss: bool
    on_unreadable_file: str
    null_values: tuple[str, ...]
    include_unfinished: bool
    exclude_when: tuple[ExcludeRule, ...]


def _load_settings(merged: dict[str, Any], where: str) -> _LoadSettings:
    """Pop the load settings out of a source's merged entry, checked; defaults from the contract."""
    settings = _LoadSettings(
        max_quarantine_share=_number(merged.pop("max_quarantine_share", contracts.MAX_QUARANTINE_SHARE),
                                     "max_quarantine_share", where),
        max_comment_chars=int(_number(merged.pop("max_comment_chars", contracts.MAX_COMMENT_CHARS),
                                      "max_comment_chars", where)),
        future_tolerance_hours=_number(merged.pop("future_tolerance_hours", contracts.FUTURE_TOLERANCE_HOURS),
                                       "future_tolerance_hours", where),
        keep_original_comment=_truthy(merged.pop("keep_original_comment", False)),
        max_row_loss_share=_number(merged.pop("max_row_loss_share", contracts.MAX_ROW_LOSS_SHARE),
                                   "max_row_loss_share", where),
        accept_row_loss=_truthy(merged.pop("accept_row_loss", False)),
        on_unreadable_file=str(merged.pop("on_unreadable_file", "fail")).strip().lower(),
        null_values=_null_values(merged.pop("null_values", DEFAULT_NULL_VALUES), where),
        include_unfinished=_truthy(merged.pop("include_unfinished", False)),
        exclude_when=_exclude_rules(merged.pop("exclude_when", None), where),
    )
    if not 0 <= settings["max_row_loss_share"] <= 1:
        raise SourceConfigError(f"{where}: max_row_loss_share must be a share in [0, 1], "
                                f"got {settings['max_row_loss_share']!r}")
    if not 0 <= settings["future_tolerance_hours"] <= contracts.FUTURE_TOLERANCE_HOURS:
        # the validation gate fails raw rows beyond the contract's tolerance: a larger one here
        # would load rows that then fail the night
        raise SourceConfigError(
            f"{where}: future_tolerance_hours must be in [0, {contracts.FUTURE_TOLERANCE_HOURS:g}] (the "
            "contract's tolerance, which the validation gate also applies), "
            f"got {settings['future_tolerance_hours']!r}")
    if settings["on_unreadable_file"] not in ON_UNREADABLE_FILE:
        raise SourceConfigError(f"{where}: on_unreadable_file must be one of {', '.join(ON_UNREADABLE_FILE)}, "
                                f"got {settings['on_unreadable_file']!r}")
    return settings


def _check_connector_options(connector: str, options: dict[str, Any], where: str) -> None:
    """What each connector needs (a file source's format is filled in from its path)."""
    if connector == "file":
        if not options.get("path"):
            raise SourceConfigError(f"{where}: a file source needs 'path' (a file, folder or glob)")
        fmt = options.setdefault("format", _guess_format(str(options["path"])))
        if fmt not in FORMATS:
            raise SourceConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    elif connector == "http" and not options.get("url"):
        raise SourceConfigError(f"{where}: an http source needs 'url'")
    elif connector == "sql":
        if not (options.get("url") or options.get("url_env") or options.get("conn_id")):
            raise SourceConfigError(f"{where}: a sql source needs 'url', 'url_env' or 'conn_id'")
        if not (options.get("table") or options.get("query")):
            raise SourceConfigError(f"{where}: a sql source needs 'table' or 'query'")


def _exclude_rules(value: Any, where: str) -> tuple[ExcludeRule, ...]:
    """`exclude_when: [{column: tags, contains: [test]}, {column: person_properties.test, values: [true]}]`."""
    if value is None:
        return ()
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise SourceConfigError(f"{where}: exclude_when must be a list of {{column, values | contains, reason}}")
    rules = []
    for i, item in enumerate(items):
        at = f"{where}: exclude_when[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("column"), str) or not item["column"].strip():
            raise SourceConfigError(f"{at} needs 'column' (a source column, e.g. tags or person_properties.test)")
        unknown = set(item) - {"column", "values", "contains", "reason"}
        if unknown:
            raise SourceConfigError(f"{at}: unknown key(s) {', '.join(sorted(unknown))}; "
                                    "known: column, values, contains, reason")

        values, contains = _texts(item, "values", at), _texts(item, "contains", at)
        if not values and not contains:
            raise SourceConfigError(f"{at}: give 'values' (whole-value matches) or 'contains' (fragments)")
        rules.append(ExcludeRule(column=item["column"].strip(), values=frozenset(values), contains=tuple(contains),
                                 reason=str(item.get("reason") or "excluded by exclude_when")))
    return tuple(rules)


def _texts(item: dict[str, Any], key: str, at: str) -> list[str]:
    raw = item.get(key) or []
    raw = [raw] if isinstance(raw, str | int | float | bool) else raw
    if not isinstance(raw, list) or not all(isinstance(v, str | int | float | bool) for v in raw):
        raise SourceConfigError(f"{at}: {key} must be a list of values, got {item.get(key)!r}")
    # YAML reads true / false as booleans; JSON APIs send them as text "true" / "false"
    return [(str(v).lower() if isinstance(v, bool) else str(v)).strip().casefold() for v in raw]


def _null_values(value: Any, where: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if values is None:
        return ()
    if not isinstance(values, list | tuple) or not all(isinstance(v, str | int | float) for v in values):
        raise SourceConfigError(f"{where}: null_values must be a list of strings, got {value!r}")
    return tuple(str(v) for v in values)


SOURCE_NEEDS = config.DBT_PROJECT_DIR / "seeds" / "source_needs.csv"


def source_needs(entity: str | None = None) -> list[tuple[str, str, str]]:
    """(mart, entity, what the mart shows without it) from the dbt seed that is this fact's one
    home (marts.source_coverage is built from it), optionally for one entity."""
    import csv

    with SOURCE_NEEDS.open(encoding="utf-8", newline="") as f:
        rows = [(r["mart"], r["entity"], r["effect_when_missing"]) for r in csv.DictReader(f)]
    return [r for r in rows if entity is None or r[1] == entity]


def _guess_format(path: str) -> str:
    lowered = path.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet")):
        if lowered.endswith(suffix) or lowered.endswith(suffix + ".gz"):
            return fmt
    return "csv"


def load(path: str | Path | None = None, *, sources_dir: Path | None = None) -> SourcesConfig:
    """Read and validate the sources configuration (default: NPS_SOURCES_CONFIG or sources.yml)."""
    import yaml

    path = Path(path) if path else config_path()
    if not path.is_file():
        raise SourceConfigError(
            f"source configuration {path} not found (set {CONFIG_ENV} or create sources.yml; see README 'Sources')"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SourceConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse(document, origin=str(path), sources_dir=sources_dir)
