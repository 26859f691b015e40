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
  on_unreadable_file  fail (default) | quarantine: what a file no parser can read does (empty,
                  an unterminated quote, a corrupt Parquet file). fail: the other files load, then
                  the load fails naming every such file and why; quarantine: one raw.quarantine
                  row (rule unreadable_file) per file and the load goes on. Either way the rows
                  loaded from that file before are kept (a load setting: nps.sources parses it,
                  nps_airflow.extract acts on it).
  records_path    JSON: dotted path to the list of records inside the document
  timezone        for timestamps without an offset (default UTC)

CSV rows must have as many fields as the header (`a,b,` has three): a row with fewer is
quarantined as `short_row` (a line cut off), one with more as `long_row` (an unquoted
delimiter), with the raw record in the payload's `_raw`. Clean files stay on pandas' C parser:
a vectorised count of the fields of every record (RFC 4180 quoting) confirms what pandas read,
and only a file where they disagree, or that pandas cannot parse, is re-read record by record
with the csv module.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nps_airflow.connectors.base import (
    LINE,
    RAW,
    REJECT,
    REJECT_DETAIL,
    Batch,
    Part,
    SourceContractError,
    Unreadable,
)
from nps_airflow.connectors.cells import DIRTY, clean_frame, escape_dirty, placeholders
from nps_airflow.connectors.json_records import dig, records_frame
from nps_airflow.connectors.timestamps import in_window

if TYPE_CHECKING:
    from nps.sources import EntitySource

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
_UNPARTITIONED = ("none", "false", "no")
_HEAD_CHARS = 2000  # of an unreadable file's text, kept in its quarantine payload


class UnreadableFile(ValueError):
    """A file no parser can read as a whole; `head` is the start of its text."""

    def __init__(self, detail: str, head: str = "") -> None:
        super().__init__(detail)
        self.head = head


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
    # strings until the end: a backfill lists a folder of hundreds of daily files once per day
    return [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(p)]


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
        paths = self.files_for_window(start, end)
        if not paths and not base.exists():
            raise SourceContractError(
                f"{self.source.entity}: source path {self.pattern} does not exist ({self.source.describe()})"
            )
        parts, unreadable = [], []
        for path in paths:
            try:
                parts.append(self.read_file(path))
            except UnreadableFile as exc:
                unreadable.append(Unreadable(location=str(path), detail=str(exc), head=exc.head))
        watermark = self.source.incremental_column
        if watermark:
            for part in parts:
                if watermark in part.frame.columns:
                    part.frame = part.frame[in_window(part.frame[watermark], start, end, self.timezone)]
        return Batch(parts=parts, location=self.pattern, units=len(paths),
                     files=[str(p) for p in paths] if self.owns_files else None, unreadable=unreadable)

    def read_file(self, path: Path) -> Part:
        """One file as a Part; raises UnreadableFile (with the start of its text) when no parser
        can read it as a whole."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableFile(f"cannot read the file: {exc}") from exc
        try:
            return self._parse(path, data)
        except UnreadableFile as exc:
            exc.head = _head(data, self.encoding)
            raise

    def _parse(self, path: Path, data: bytes) -> Part:
        if self.format == "parquet":
            import pyarrow as pa

            try:
                return Part(frame=self._parquet(path), location=str(path))
            except (pa.ArrowException, OSError) as exc:
                raise UnreadableFile(f"not a readable Parquet file ({len(data)} bytes): {exc}") from exc
        try:
            text, dirty = _decode(data, self.encoding)
        except UnicodeError as exc:  # a codec that cannot even escape the bytes (e.g. cut UTF-16)
            raise UnreadableFile(f"cannot decode the file as {self.encoding}: {exc}") from exc
        if self.format == "csv":
            if not data:
                raise UnreadableFile("empty file (0 bytes): not even a header row")
            try:
                frame, meta = self._csv(text, dirty)
            except csv.Error as exc:  # e.g. the extra header rows of a file with bare CR line ends
                raise UnreadableFile(f"cannot parse the file as CSV: {exc}") from exc
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
        try:
            frame = pd.read_csv(
                io.StringIO(text), dtype=object if dirty else str, keep_default_na=False, na_filter=False,
                sep=delimiter, skiprows=range(1, header_rows), skip_blank_lines=True,
            )
        except pd.errors.EmptyDataError as exc:
            raise UnreadableFile(f"no header row (only blank lines): {exc}") from exc
        except pd.errors.ParserError as exc:
            if "EOF inside string" not in str(exc):  # e.g. a row with more fields than the header
                return _csv_by_record(text, dirty, delimiter, header_rows), meta
            try:  # the csv module finds the line the quote opens on
                _csv_by_record(text, dirty, delimiter, header_rows)
            except UnreadableFile as located:
                raise UnreadableFile(f"{located} ({exc})") from exc
            raise UnreadableFile(f"unterminated quote: {exc}") from exc
        # pandas pads a short row with "" and drops into an implied index a first row with one
        # field too many: only the field count of every record says the frame is the file
        lines = _record_lines(text, delimiter, header_rows, len(frame.columns), len(frame))
        if lines is None:
            return _csv_by_record(text, dirty, delimiter, header_rows), meta
        frame[LINE] = lines  # the physical line each record starts on, as an editor shows it
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


def _head(data: bytes, encoding: str) -> str:
    """The start of a file's text for a quarantine payload (NUL / undecodable bytes escaped)."""
    try:
        text = data[:_HEAD_CHARS * 4].decode(encoding, errors="replace")
    except (LookupError, UnicodeError):
        text = data[:_HEAD_CHARS * 4].decode("utf-8", errors="replace")
    return escape_dirty(text[:_HEAD_CHARS])


def _record_lines(text: str, delimiter: str, header_rows: int, columns: int, rows: int) -> np.ndarray | None:
    """The physical line each data record starts on (a quoted newline makes a record span lines),
    when the file has `header_rows + rows` non-blank records, each (but extra header rows) with
    `columns` fields; else None (the caller then reads the file record by record). Delimiters and
    newlines count outside quotes only (RFC 4180: every quote toggles), vectorised over the bytes."""
    if len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n':
        return None
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)  # ASCII bytes never occur inside UTF-8 chars
    newlines = np.flatnonzero(data == 10)
    ends, delims = newlines, np.flatnonzero(data == ord(delimiter))
    if '"' in text:  # outside quotes: an even number of quotes before the position
        quotes = np.flatnonzero(data == 34)
        ends = ends[np.searchsorted(quotes, ends) % 2 == 0]
        delims = delims[np.searchsorted(quotes, delims) % 2 == 0]
    if not len(ends) or ends[-1] != len(data) - 1:
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    fields = np.diff(np.searchsorted(delims, ends), prepend=0) + 1  # no delimiter sits on a newline
    first_lines = np.searchsorted(newlines, starts) + 1  # newlines (quoted or not) before the record, + 1
    single = np.flatnonzero(fields == 1)
    if len(single):  # a record without a delimiter may be a blank line, which pandas skips
        blank = np.array([not data[starts[i]:ends[i]].tobytes().strip() for i in single], dtype=bool)
        fields, first_lines = np.delete(fields, single[blank]), np.delete(first_lines, single[blank])
    if (len(fields) == header_rows + rows and bool(fields[0] == columns)
            and bool((fields[header_rows:] == columns).all())):
        return first_lines[header_rows:]
    return None


def _records(text: str, delimiter: str) -> list[tuple[list[str], str, int]]:
    """Every non-blank record of a CSV text: its fields, its raw text, the file line it starts on.
    Raises UnreadableFile when the csv module cannot parse it or a quote never closes."""
    consumed: list[str] = []

    def lines():
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    out: list[tuple[list[str], str, int]] = []
    line_no = 1
    try:
        for fields in csv.reader(lines(), delimiter=delimiter):
            raw, lines_read = "".join(consumed), len(consumed)
            consumed.clear()
            if len(fields) > 1 or (fields and raw.strip()):  # pandas skips blank lines too
                out.append((fields, raw, line_no))
            line_no += lines_read
    except csv.Error as exc:
        raise UnreadableFile(f"cannot parse the file as CSV near line {line_no}: {exc}") from exc
    if out:  # the lenient reader ends an unterminated quoted value at EOF; the strict one says so
        try:
            for _ in csv.reader(io.StringIO(out[-1][1], newline=""), delimiter=delimiter, strict=True):
                pass
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise UnreadableFile(
                    f"unterminated quote: the quoted value in the row starting on line {out[-1][2]} never "
                    "closes, so the rest of the file would be one value"
                ) from exc
    return out


def _csv_by_record(text: str, dirty: bool, delimiter: str, header_rows: int) -> pd.DataFrame:
    """A CSV file the fast path cannot take, record by record (csv module): rows with fewer or more
    fields than the header are kept, padded / cut to its columns, as `short_row` / `long_row`
    rejects with the raw record in `_raw`. Lines are the physical lines records start on, as on
    the fast path."""
    records = _records(text, delimiter)
    if not records:
        raise UnreadableFile("no header row (only blank lines)")
    # pandas' names for the header (duplicates and blanks named as on the fast path)
    columns = list(pd.read_csv(io.StringIO(records[0][1]), sep=delimiter, nrows=0).columns)
    n = len(columns)
    data = records[header_rows:]
    counts = np.array([len(fields) for fields, _, _ in data], dtype=np.int64)
    values = [fields[:n] if len(fields) >= n else fields + [""] * (n - len(fields)) for fields, _, _ in data]
    frame = pd.DataFrame(values, columns=columns, dtype=object if dirty else str)
    bad = counts != n
    raws = [raw.rstrip("\r\n") if b else "" for (_, raw, _), b in zip(data, bad, strict=True)]
    frame[RAW] = [escape_dirty(r) for r in raws] if dirty else raws  # shows undecodable bytes as \xNN
    frame[LINE] = [line for _, _, line in data]
    frame = clean_frame(frame)
    reject, detail = frame.columns.get_loc(REJECT), frame.columns.get_loc(REJECT_DETAIL)
    for pos in np.flatnonzero(bad):
        count, line = int(counts[pos]), data[pos][2]
        short = count < n
        frame.iat[pos, reject] = "short_row" if short else "long_row"
        frame.iat[pos, detail] = (
            f"{count} fields where the header has {n}: "
            + ("the row ends early (cut off?)" if short else "more values than columns (an unquoted delimiter?)")
            + f"; file line {line}, the record as read in _raw"
        )
    return frame


def drop_writers(sources_dir: Path, config_path: Path | None = None) -> dict[str, FileConnector]:
    """Per entity, the file connector of the default sources.yml rooted at `sources_dir`: the demo
    generator writes its file drops with `drop_writers(out)[entity].write(frame, day)`, so the demo
    reads back exactly what the file connector's configuration says."""
    from nps import sources

    cfg = sources.load(config_path or sources.DEFAULT_CONFIG, sources_dir=sources_dir)
    return {name: FileConnector(src) for name, src in cfg.entities.items() if src.connector == "file"}
