"""File drops: CSV / JSON Lines / JSON / Parquet under a path, folder or glob.

Options (sources.yml):
  path            file, folder or glob (`**` allowed), e.g. ${NPS_SOURCES_DIR}/survey_responses/*.csv
  format          csv | jsonl | json | parquet (default: from the file name)
  encoding        any Python codec name (utf-8, cp1252, latin-1, utf-16, ...); default utf-8.
                  Bytes that are not valid in it never fail the file: the row is quarantined.
  partition_date  filename (default: a YYYY-MM-DD in the path below the glob's fixed prefix dates
                  the file; a run owns the files dated on the days of its interval and loads every
                  row in them, so a late row in a later day's file is loaded, never dropped; a
                  rerun replaces those files' rows; a file without a date is loaded whole by every
                  run) | none (every file is read every run; rows are kept by their own date)
  delimiter       CSV field separator (default ",")
  header_rows     CSV rows before the data (default 1; a Qualtrics export has 3)
  records_path    JSON: dotted path to the list of records inside the document
  timezone        for timestamps without an offset (default UTC)
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nps_airflow.connectors import (
    DIRTY,
    LINE,
    Batch,
    Part,
    clean_frame,
    in_window,
    placeholders,
    records_frame,
)

if TYPE_CHECKING:
    from nps.sources import EntitySource

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
_UNPARTITIONED = ("none", "false", "no")


def owned_days(start: datetime, end: datetime) -> tuple[date, date]:
    """[first, last) of the days whose midnight (UTC) lies in [start, end); a window inside one
    day owns that day (each such run reloads that day's file whole, which is idempotent)."""
    def ceil(t: datetime) -> date:
        return t.date() if (t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0) else t.date() + timedelta(days=1)

    first, last = ceil(start), ceil(end)
    return (first, last) if first < last else (start.date(), start.date() + timedelta(days=1))
_GLOB_CHARS = re.compile(r"[*?\[]")


def _fixed_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard component."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else ""


def list_files(pattern: str) -> list[Path]:
    path = Path(pattern)
    if not _GLOB_CHARS.search(pattern):
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return [path] if path.is_file() else []
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


def file_date(path: Path, prefix: str) -> date | None:
    """The partition date in the path below the glob prefix (file or folder name), if any."""
    rel = str(path)[len(prefix):] if prefix and str(path).startswith(prefix) else path.name
    match = _DATE.search(rel)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _decode(data: bytes, encoding: str) -> tuple[str, bool]:
    """Text of a file; undecodable bytes survive as lone surrogates (quarantined per row later)."""
    text = data.decode(encoding, errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    dirty = DIRTY.search(text) is not None
    return (placeholders(text) if dirty else text), dirty


class FileConnector:
    def __init__(self, source: EntitySource) -> None:
        self.source = source
        self.pattern = str(source.option("path"))
        self.format = source.option("format", "csv")
        self.encoding = source.option("encoding", "utf-8")
        self.partition = str(source.option("partition_date", "filename")).lower()
        self.timezone = source.option("timezone", "UTC")
        try:
            "".encode(self.encoding)
        except LookupError as exc:
            raise ValueError(f"{source.describe()}: unknown encoding {self.encoding!r}") from exc

    # ------------------------------------------------------------ reading

    @property
    def owns_files(self) -> bool:
        """Date-partitioned drops loaded by window (not updated-since): a run owns its days' files."""
        return self.partition not in _UNPARTITIONED and not self.source.incremental_column

    def files_for_window(self, start: datetime, end: datetime) -> list[Path]:
        files = list_files(self.pattern)
        if self.partition in _UNPARTITIONED:
            return files
        if self.owns_files:
            lo, hi = owned_days(start, end)
            hi -= timedelta(days=1)
        else:  # updated-since over dated files: a day either side for rows near midnight
            lo, hi = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
        prefix = _fixed_prefix(self.pattern)
        chosen = []
        for path in files:
            day = file_date(path, prefix)
            if day is None or lo <= day <= hi:  # undated files are always read
                chosen.append(path)
        return chosen

    def read(self, start: datetime, end: datetime, *, window_column: str | None = None) -> Batch:
        base = Path(_fixed_prefix(self.pattern) or ".")
        if not list_files(self.pattern) and not base.exists():
            from nps_airflow.extract import SourceContractError

            raise SourceContractError(
                f"{self.source.entity}: source path {self.pattern} does not exist ({self.source.describe()})"
            )
        paths = self.files_for_window(start, end)
        parts = [self.read_file(path) for path in paths]
        watermark = self.source.incremental_column
        if watermark:
            for part in parts:
                if watermark in part.frame.columns:
                    part.frame = part.frame[in_window(part.frame[watermark], start, end, self.timezone)]
        return Batch(parts=parts, location=self.pattern, units=len(paths),
                     files=[str(p) for p in paths] if self.owns_files else None)

    def read_file(self, path: Path) -> Part:
        data = path.read_bytes()
        if self.format == "parquet":
            return Part(frame=self._parquet(path), location=str(path))
        text, dirty = _decode(data, self.encoding)
        if self.format == "csv":
            frame, meta = self._csv(text, dirty)
            return Part(frame=frame, location=str(path), meta=meta)
        if self.format == "jsonl":
            return Part(frame=self._jsonl(text), location=str(path), tabular=False)
        return Part(frame=self._json(text), location=str(path), tabular=False)

    def _csv(self, text: str, dirty: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
        header_rows = int(self.source.option("header_rows", 1))
        delimiter = self.source.option("delimiter", ",")
        meta: dict[str, Any] = {}
        if header_rows > 1:
            # keep the extra header rows (Qualtrics: question text, ImportId JSON) for mappings
            reader = csv.reader(io.StringIO(text), delimiter=delimiter)
            meta["header_rows"] = [row for _, row in zip(range(header_rows), reader, strict=False)]
        frame = pd.read_csv(
            io.StringIO(text), dtype=object if dirty else str, keep_default_na=False, na_filter=False,
            sep=delimiter, skiprows=range(1, header_rows), skip_blank_lines=True,
        )
        # header is line 1 (+ extra header rows); quoted newlines make this a record number
        frame[LINE] = range(header_rows + 1, len(frame) + header_rows + 1)
        return clean_frame(frame), meta

    def _jsonl(self, text: str) -> pd.DataFrame:
        records, lines, rejects = [], [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                rejects.append((number, "invalid_json", f"not a JSON object: {exc}", line))
                continue
            if not isinstance(record, dict):
                rejects.append((number, "invalid_json", "not a JSON object", line))
                continue
            records.append(record)
            lines.append(number)
        return records_frame(records, lines, rejects)

    def _json(self, text: str) -> pd.DataFrame:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            return records_frame([], [], [(exc.lineno, "invalid_json", f"file is not valid JSON: {exc}",
                                           text[:2000])])
        records = dig(document, self.source.option("records_path"))
        if not isinstance(records, list):
            records = [records]
        good = [r for r in records if isinstance(r, dict)]
        lines = [i for i, r in enumerate(records, start=1) if isinstance(r, dict)]
        rejects = [(i, "invalid_json", "record is not a JSON object", json.dumps(r))
                   for i, r in enumerate(records, start=1) if not isinstance(r, dict)]
        return records_frame(good, lines, rejects)

    def _parquet(self, path: Path) -> pd.DataFrame:
        import pyarrow.parquet as pq

        frame = pq.read_table(path).to_pandas(types_mapper=None)
        out = pd.DataFrame(index=frame.index)
        for column in frame.columns:
            values = frame[column]
            if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
                if values.dt.tz is None:
                    values = values.dt.tz_localize(self.timezone)
                values = values.dt.tz_convert("UTC")
                out[column] = values.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").where(values.notna(), "")
            else:
                out[column] = values.astype(object).map(lambda v: v)
        out[LINE] = range(1, len(out) + 1)
        return clean_frame(out)

    # ------------------------------------------------------------ writing (the demo generator)

    def path_for(self, day: date | str) -> Path:
        """Where the file drop of `day` goes: the path with its first `*` replaced by the date."""
        if "*" not in self.pattern:
            raise ValueError(f"{self.source.describe()}: path {self.pattern} has no '*' to put a date in")
        return Path(self.pattern.replace("*", str(day), 1))

    def write(self, frame: pd.DataFrame, day: date | str) -> Path:
        """Write one day's rows as this source's file drop (same format and encoding it reads)."""
        path = self.path_for(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "csv":
            frame.to_csv(path, index=False, lineterminator="\n", encoding=self.encoding,
                         sep=self.source.option("delimiter", ","))
        elif self.format == "jsonl":
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
        elif self.format == "parquet":
            frame.to_parquet(path, index=False)
        else:
            path.write_text(frame.to_json(orient="records", force_ascii=False), encoding=self.encoding)
        return path


def dig(document: Any, dotted: str | None) -> Any:
    """document['a']['b'] for 'a.b'; the document itself for an empty path."""
    if not dotted:
        return document
    for key in str(dotted).split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def drop_writers(sources_dir: Path, config_path: Path | None = None) -> dict[str, FileConnector]:
    """Per entity, the file connector of the default sources.yml rooted at `sources_dir`: the demo
    generator writes its file drops with `drop_writers(out)[entity].write(frame, day)`, so the demo
    reads back exactly what the file connector's configuration says."""
    from nps import sources

    cfg = sources.load(config_path or sources.DEFAULT_CONFIG, sources_dir=sources_dir)
    return {name: FileConnector(src) for name, src in cfg.entities.items() if src.connector == "file"}
